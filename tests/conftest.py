import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores with each other and with CI's other work."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _symmetry_cache(tmp_path_factory):
    """--augment auto caches its analysis per split: in a folder of this session's, not the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEWLABELS_CACHE", str(tmp_path_factory.mktemp("fewlabels-cache")))
    yield
    mp.undo()
