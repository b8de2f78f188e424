"""FlexMatch, FreeMatch and SoftMatch: their thresholds and weights by hand, state, and short runs."""

import math

import pytest
import torch
from stand_ins import LogitsAreInputs, context

from fewlabels import algorithms
from fewlabels.algorithms.components.thresholds import (
    CurriculumThreshold,
    DistributionAlignment,
    SelfAdaptiveThreshold,
    TruncatedGaussianWeight,
)
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, train


def batch(u_weak, u_strong, index=None):
    n = len(u_weak)
    return {"labeled": {"weak": torch.zeros(1, u_weak.shape[1]), "y": torch.tensor([0])},
            "unlabeled": {"weak": u_weak, "strong": u_strong, "index": torch.arange(n) if index is None else index}}


def test_curriculum_thresholds_by_hand():
    cur = CurriculumThreshold(tau=0.9, num_unlabeled=10, num_classes=3, warmup=True)
    cur.predictions = torch.tensor([0, 0, 0, 0, 1, 1, -1, -1, -1, -1])
    # sigma = [4, 2, 0], unused = 4 -> beta = [1, .5, 0] -> M = [1, 1/3, 0] -> T = [.9, .3, 0]
    assert torch.allclose(cur.class_thresholds(), torch.tensor([0.9, 0.3, 0.0]))
    cur.warmup = False  # without warm-up: max sigma only, same here as 4 == 4
    assert torch.allclose(cur.class_thresholds(), torch.tensor([0.9, 0.3, 0.0]))
    cur.predictions = torch.tensor([0, 0, 1, -1, -1, -1, -1, -1, -1, -1])
    cur.warmup = True  # 7 unused dominate: beta = [2/7, 1/7, 0]
    b = torch.tensor([2 / 7, 1 / 7, 0.0])
    assert torch.allclose(cur.class_thresholds(), b / (2 - b) * 0.9)


def test_curriculum_updates_learning_status_only_above_tau():
    cur = CurriculumThreshold(tau=0.9, num_unlabeled=4, num_classes=2)
    probs = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.5, 0.5]])
    mask = cur(probs, torch.tensor([3, 2, 1, 0]))
    # at the start every class threshold is 0: everything passes
    assert mask.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert cur.predictions.tolist() == [-1, 1, -1, 0]


def test_flexmatch_loss_uses_per_class_thresholds():
    fm = algorithms.get("flexmatch", threshold=0.9)
    fm.setup(context(None, num_classes=2, num_unlabeled=4, total_steps=10))
    fm.curriculum.predictions = torch.tensor([0, 0, 0, -1])  # class 0 learned (T=.9*?), class 1 not (T=0)
    u_weak = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # conf .731 for class 0 and class 1
    u_strong = torch.zeros(2, 2)
    out = fm.losses(LogitsAreInputs(), batch(u_weak, u_strong), 0)
    # sigma = [3, 0], unused 1 -> beta = [1, 0] -> T = [0.9, 0]: sample 0 fails, sample 1 passes
    assert out["mask"].tolist() == [False, True]
    assert out["unsup"].item() == pytest.approx(math.log(2) / 2)


def test_self_adaptive_threshold_by_hand():
    sat = SelfAdaptiveThreshold(num_classes=2, momentum=0.5)
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    mask = sat(probs)
    # tau = .5*.5 + .5*mean(.9,.7) = .65; p~ = .5*[.5,.5] + .5*[.6,.4] = [.55,.45]; T = [.65, .65*.45/.55]
    assert sat.global_tau.item() == pytest.approx(0.65)
    assert torch.allclose(sat.local_p, torch.tensor([0.55, 0.45]))
    assert torch.allclose(sat.class_thresholds(), torch.tensor([0.65, 0.65 * 0.45 / 0.55]))
    assert mask.tolist() == [1.0, 1.0]  # .9 >= .65 and .7 >= .532
    assert torch.allclose(sat.histogram, torch.tensor([0.5, 0.5]))


def test_freematch_fairness_is_negative_cross_entropy():
    fm = algorithms.get("freematch", momentum=0.5, lambda_f=1.0)
    fm.setup(context(None, num_classes=2, num_unlabeled=2, total_steps=10))
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
    fair = fm.fairness(logits, torch.tensor([1.0, 1.0]))
    # both classes predicted once: h_bar = [.5,.5]; mean prob = [.5,.5]; target = [.5,.5] -> sum .5 log .5 * 2
    assert fair.item() == pytest.approx(math.log(0.5), abs=1e-5)
    fair.backward()
    assert logits.grad is not None
    assert fm.fairness(logits, torch.tensor([0.0, 0.0])).item() == 0.0


def test_truncated_gaussian_weights_by_hand():
    tg = TruncatedGaussianWeight(num_classes=2, momentum=0.0, n_sigma=2.0)  # momentum 0: batch statistics
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5]])
    w = tg(probs)
    conf = torch.tensor([0.9, 0.7, 0.5])
    mu, var = conf.mean(), conf.var()
    assert w[0].item() == 1.0  # above the mean
    assert w[1].item() == pytest.approx(1.0)  # exactly at the mean (0.7)
    assert w[2].item() == pytest.approx(math.exp(-((0.5 - mu.item()) ** 2) / (2 * var.item() / 4)))


def test_distribution_alignment_by_hand():
    da = DistributionAlignment(num_classes=2, momentum=0.0)
    probs = torch.tensor([[0.8, 0.2], [0.6, 0.4]])
    out = da(probs)  # p_model = [.7, .3]; ratio = [.5/.7, .5/.3]
    expected = probs * torch.tensor([0.5 / 0.7, 0.5 / 0.3])
    assert torch.allclose(out, expected / expected.sum(1, keepdim=True))
    assert torch.allclose(da.p_model, torch.tensor([0.7, 0.3]))


@pytest.mark.parametrize("name", ["flexmatch", "freematch", "softmatch"])
def test_state_round_trip_gives_the_same_losses(name):
    a = algorithms.get(name)
    a.setup(context(None, num_classes=3, num_unlabeled=8, total_steps=10))
    g = torch.Generator().manual_seed(0)
    model = LogitsAreInputs()
    for step in range(3):
        a.losses(model, batch(torch.randn(8, 3, generator=g) * 3, torch.randn(8, 3, generator=g)), step)
    b = algorithms.get(name)
    b.setup(context(None, num_classes=3, num_unlabeled=8, total_steps=10))
    b.load_state_dict(a.state_dict())
    probe = batch(torch.randn(8, 3, generator=g) * 3, torch.randn(8, 3, generator=g))
    la, lb = a.losses(model, probe, 3), b.losses(model, probe, 3)
    assert la["total"].item() == lb["total"].item()
    assert torch.equal(la["mask"], lb["mask"])


@pytest.mark.parametrize("name, kwargs, fragment", [
    ("flexmatch", {"threshold": 0}, "threshold must be in (0, 1]"),
    ("freematch", {"lambda_f": -1}, "lambda_f must be 0 or more"),
    ("softmatch", {"n_sigma": 0}, "n_sigma must be greater than 0"),
    ("softmatch", {"momentum": 1.5}, "momentum must be in [0, 1)"),
])
def test_bad_hyper_parameters(name, kwargs, fragment):
    with pytest.raises(FewLabelsError) as err:
        algorithms.get(name, **kwargs)
    assert fragment in str(err.value)


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["flexmatch", "freematch", "softmatch"])
def test_short_digits_run_learns(name, tmp_path):
    res = train(TrainConfig(dataset="digits", labels_per_class=5, algorithm=name, iterations=120, eval_every=60,
                            batch_size=32, uratio=3, out=str(tmp_path / "r")), progress=False)
    assert res["test_accuracy"] > 0.75  # chance is 0.10
    assert res["final_mask_rate"] > 0.1
