"""Every registered algorithm trains a few steps through the one loop, checkpoints and reports: no hand-kept list."""

import json

import pytest
import torch

from fewlabels import algorithms
from fewlabels.train import TrainConfig, train

SMALL = dict(dataset="digits", labels_per_class=2, iterations=3, eval_every=3, checkpoint_every=3, batch_size=8, uratio=2,
             seed=0)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A finished run, for algorithms that require a teacher (distillation)."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(TrainConfig(**SMALL, algorithm="supervised", out=str(out)), progress=False)
    return str(out)


@pytest.mark.parametrize("name", algorithms.names())
def test_every_registered_algorithm_runs_a_few_steps(name, tmp_path, teacher):
    torch.set_num_threads(1)
    options = {"teacher": teacher} if "teacher" in algorithms.get_class(name).requires else {}
    res = train(TrainConfig(**SMALL, algorithm=name, options=options, out=str(tmp_path / "r")), progress=False)
    assert res["iterations"] == 3 and 0.0 <= res["test_accuracy"] <= 1.0
    assert res["final_loss"] == res["final_loss"]  # finite and logged
    ckpt = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert ckpt["format"] == 2 and ckpt["config"]["algorithm"] == name
    assert json.loads((tmp_path / "r" / "results.json").read_text())["algorithm_options"] == res["algorithm_options"]
