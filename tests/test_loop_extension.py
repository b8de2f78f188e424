"""The loop takes the next methods' parts unchanged: a head, an EMA target network and a parameter group of its own.

``HeadAndTarget`` is a test-only algorithm of the shape BYOL and an online probe need: a
projector trained with the model, a momentum copy of it updated after each step, and a
linear probe on detached features with its own learning rate. It must train, checkpoint
and resume bit-identically through the ordinary loop, and its diagnostics must reach
metrics.csv and results.json.
"""

import copy
import csv
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewlabels import algorithms
from fewlabels.algorithms import Algorithm
from fewlabels.algorithms.components.base import _REGISTRY
from fewlabels.algorithms.components.options import MOMENTUM, NON_NEGATIVE, Option
from fewlabels.algorithms.components.result import step_result
from fewlabels.evaluate import accuracy
from fewlabels.train import TrainConfig, prepare, resume, train
from fewlabels.train.loop import Trainer


class HeadAndTarget(Algorithm):
    name = "test-head-target"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {"probe_lr": Option(NON_NEGATIVE, "learning rate of the probe"),
               "momentum": Option(MOMENTUM, "momentum of the target projector")}

    def __init__(self, probe_lr: float = 0.5, momentum: float = 0.9) -> None:
        super().__init__()
        self.probe_lr, self.momentum = probe_lr, momentum

    def setup(self, ctx) -> None:
        d = ctx.model.feature_dim
        self.projector = nn.Sequential(nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
        self.target = copy.deepcopy(self.projector).requires_grad_(False)
        self.probe = nn.Linear(d, ctx.num_classes)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def param_groups(self):
        return [{"params": list(self.probe.parameters()), "lr": self.probe_lr, "weight_decay": 0.0}]

    def losses(self, model, batch, step):
        lab, unl = batch["labeled"], batch["unlabeled"]
        n, m = len(lab["weak"]), len(unl["weak"])
        logits, feats = model(torch.cat([lab["weak"], unl["weak"], unl["strong"]]))
        sup = F.cross_entropy(logits[:n], lab["y"])
        online = F.normalize(self.projector(feats[n + m:]), dim=-1)
        with torch.no_grad():
            target = F.normalize(self.target(feats[n:n + m]), dim=-1)
        agreement = (2 - 2 * (online * target).sum(-1)).mean()
        probe = F.cross_entropy(self.probe(feats[:n].detach()), lab["y"])
        return step_result(sup + agreement + probe, sup=sup, unsup=agreement, probe_loss=probe)

    @torch.no_grad()
    def after_step(self, model) -> None:
        for t, s in zip(self.target.parameters(), self.projector.parameters()):
            t.lerp_(s, 1 - self.momentum)
        self.updates += 1

    def monitors(self):
        return [ProbeAccuracy(self)]


class ProbeAccuracy:
    """The probe's test accuracy on the EMA model's features: a monitor an algorithm brings."""

    def __init__(self, algorithm: HeadAndTarget) -> None:
        self.algorithm = algorithm

    @torch.no_grad()
    def __call__(self, ctx):
        predicted = self.algorithm.probe(ctx.features(ctx.ema_model, "test")).argmax(1)
        return {"probe_acc": accuracy(ctx.test_y, predicted)}


class LabelFree(Algorithm):
    """Reads the unlabeled pool only: two views of each sample pulled together through a head."""

    name = "test-label-free"
    views = {"labeled": [], "unlabeled": ["weak", "weak#2"]}

    def setup(self, ctx) -> None:
        self.projector = nn.Linear(ctx.model.feature_dim, 8)

    def losses(self, model, batch, step):
        assert batch["labeled"] == {}
        unl = batch["unlabeled"]
        _, feats = model(torch.cat([unl["weak"], unl["weak#2"]]))
        a, b = F.normalize(self.projector(feats), dim=-1).chunk(2)
        agreement = (2 - 2 * (a * b).sum(-1)).mean()
        return step_result(agreement, unsup=agreement)


@pytest.fixture
def registered():
    for cls in (HeadAndTarget, LabelFree):
        algorithms.register(cls)
    yield HeadAndTarget.name
    for cls in (HeadAndTarget, LabelFree):
        _REGISTRY.pop(cls.name)


SETTINGS = dict(dataset="digits", labels_per_class=4, iterations=12, eval_every=6, checkpoint_every=6, keep_checkpoints=2,
                batch_size=16, uratio=2, seed=4, model="cnn")


def test_head_target_and_probe_group_train_through_the_loop(registered, tmp_path):
    torch.set_num_threads(1)
    trainer = Trainer(prepare(TrainConfig(**SETTINGS, algorithm=registered, out=str(tmp_path / "r"))), progress=False)
    alg = trainer.algorithm
    probe_group = trainer.optimizer.param_groups[-1]
    assert [id(p) for p in probe_group["params"]] == [id(p) for p in alg.probe.parameters()]
    optimized = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in optimized for p in alg.projector.parameters())
    assert not any(id(p) in optimized for p in alg.target.parameters())  # the target moves only by its average
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(optimized)  # nothing optimized twice
    before = copy.deepcopy(alg.state_dict())
    results = trainer.run()
    assert probe_group["lr"] == pytest.approx(0.5 * trainer.scheduler.lr_lambdas[0](12))  # scheduled from its own lr
    assert int(alg.updates) == 12
    for name in ("projector.0.weight", "target.0.weight", "probe.weight"):
        assert not torch.equal(before[name], alg.state_dict()[name]), name
    assert not torch.equal(alg.target[0].weight, alg.projector[0].weight)
    header = next(csv.reader((tmp_path / "r" / "metrics.csv").open()))
    assert {"probe_loss", "unsup", "probe_acc", "test_acc"} <= set(header)
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["final_probe_loss"] == results["final_probe_loss"] > 0
    assert 0 <= saved["final_probe_acc"] <= 1


def test_an_algorithm_without_labels_runs(registered, tmp_path):
    torch.set_num_threads(1)
    results = train(TrainConfig(**{**SETTINGS, "iterations": 4, "eval_every": 4, "checkpoint_every": 4},
                                algorithm=LabelFree.name, out=str(tmp_path / "r")), progress=False)
    assert results["iterations"] == 4 and 0 <= results["test_accuracy"] <= 1
    assert results["final_loss"] == results["final_unsup"] > 0


def test_head_target_and_probe_resume_exactly(registered, tmp_path):
    torch.set_num_threads(1)
    straight = tmp_path / "straight"
    train(TrainConfig(**SETTINGS, algorithm=registered, out=str(straight)), progress=False)
    halfway = tmp_path / "halfway"  # the same run as it stood at step 6
    halfway.mkdir()
    shutil.copy(straight / "config.yaml", halfway / "config.yaml")
    shutil.copy(straight / "checkpoint-00000006.pt", halfway / "last.pt")
    resume(halfway, progress=False)
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(halfway / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 12
    assert set(a["algorithm"]) >= {"projector.0.weight", "projector.1.running_mean", "target.0.weight", "probe.weight",
                                   "updates"}
    for part in ("model", "algorithm"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    for key in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][key], b["ema"]["module"][key]), key
