import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores with each other and with CI's other work."""
    torch.set_num_threads(1)
    yield
