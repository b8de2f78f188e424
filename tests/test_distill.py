"""Distillation: the KL by hand, a frozen teacher from a run folder, a short run that learns, clear refusals."""

import math

import pytest
import torch

from fewlabels.algorithms.distill import distillation_kl
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, prepare, train
from fewlabels.train.loop import Trainer

BASE = dict(dataset="digits", labels_per_class=4, batch_size=16, uratio=4, seed=0)


def test_distillation_kl_by_hand():
    same = torch.tensor([[2.0, 0.0]])
    assert distillation_kl(same, same, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    teacher = torch.tensor([[0.0, 0.0]])  # uniform
    student = torch.tensor([[math.log(3.0), 0.0]])  # (3/4, 1/4)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert distillation_kl(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # temperature 2 on doubled logits is the same distribution, scaled by T^2
    assert distillation_kl(2 * student, 2 * teacher, 2.0).item() == pytest.approx(4 * expected, rel=1e-6)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "teacher"
    torch.set_num_threads(1)
    train(TrainConfig(**{**BASE, "labels_per_class": 30}, algorithm="supervised", iterations=150, eval_every=150,
                      out=str(out)), progress=False)
    return out


def test_the_teacher_is_frozen_in_eval_mode_and_gets_no_gradient(teacher):
    trainer = Trainer(prepare(TrainConfig(**BASE, algorithm="distill", options={"teacher": str(teacher)}, iterations=2)),
                      progress=False)
    t = trainer.algorithm.teacher_model
    conv = next(p for p in t.parameters() if p.dim() == 4)
    assert trainer.channels_last and conv.is_contiguous(memory_format=torch.channels_last)  # the student's layout
    before = {k: v.clone() for k, v in t.state_dict().items()}
    optimized = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in optimized for p in t.parameters())
    trainer.run()
    assert not t.training and all(p.grad is None for p in t.parameters())
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())  # running statistics too


@pytest.mark.kernels
def test_a_short_distillation_learns_the_teacher(teacher, tmp_path):
    res = train(TrainConfig(**BASE, algorithm="distill", options={"teacher": str(teacher)}, iterations=120,
                            eval_every=120, out=str(tmp_path / "s")), progress=False)
    assert res["final_teacher_acc"] > 0.8
    assert res["test_accuracy"] > res["final_teacher_acc"] - 0.1  # 4 labels per class alone reach far less
    assert res["final_teacher_images_per_s"] > 0 and res["final_student_images_per_s"] > 0
    assert res["final_teacher_agreement"] > 0.7


def test_distill_refuses_a_missing_or_unfit_teacher(teacher, tmp_path):
    with pytest.raises(FewLabelsError, match="distill needs a teacher; give one with --option teacher=RUN_DIR"):
        Trainer(prepare(TrainConfig(**BASE, algorithm="distill", iterations=2)), progress=False)
    with pytest.raises(FewLabelsError, match="holds no checkpoint"):
        Trainer(prepare(TrainConfig(**BASE, algorithm="distill", options={"teacher": str(tmp_path)}, iterations=2)),
                progress=False)
    import numpy as np

    x = np.random.default_rng(0).integers(0, 255, size=(60, 8, 8, 1), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "three.npz", X=x, y=y, X_test=x[:9], y_test=y[:9])
    with pytest.raises(FewLabelsError, match="was trained on classes"):
        Trainer(prepare(TrainConfig(**{**BASE, "dataset": str(tmp_path / "three.npz")}, algorithm="distill",
                                    options={"teacher": str(teacher)}, iterations=2)), progress=False)
