"""FixMatch's loss on a batch small enough to check by hand."""

import math

import pytest
import torch
from stand_ins import LogitsAreInputs, context

from fewlabels import algorithms
from fewlabels.errors import FewLabelsError


def make_batch(u_weak, u_strong, x_l, y_l):
    return {"labeled": {"weak": x_l, "y": y_l}, "unlabeled": {"weak": u_weak, "strong": u_strong}}


def test_loss_values_mask_and_targets_by_hand():
    fm = algorithms.get("fixmatch", threshold=0.95, lambda_u=2.0)
    # weak view: sample 0 is confident in class 2, sample 1 is not (softmax([1,0,0])[0] = 0.576)
    u_weak = torch.tensor([[0.0, 0.0, 10.0], [1.0, 0.0, 0.0]])
    # strong view: uniform logits, so each cross-entropy is ln 3
    u_strong = torch.zeros(2, 3)
    x_l = torch.tensor([[0.0, 0.0, 0.0]])
    y_l = torch.tensor([1])
    out = fm.losses(LogitsAreInputs(), make_batch(u_weak, u_strong, x_l, y_l), step=0)
    assert out["mask"].tolist() == [True, False]
    assert out["pseudo_labels"].tolist() == [2, 0]
    assert out["mask_rate"].item() == pytest.approx(0.5)
    assert out["sup"].item() == pytest.approx(math.log(3))
    # normalised by the whole unlabeled batch (2), not by the confident count (1)
    assert out["unsup"].item() == pytest.approx(math.log(3) / 2)
    assert out["total"].item() == pytest.approx(math.log(3) + 2.0 * math.log(3) / 2)


def test_threshold_is_inclusive_and_targets_come_from_weak_view():
    fm = algorithms.get("fixmatch", threshold=0.5)
    # softmax([0, 0]) = [0.5, 0.5]: exactly at the threshold, argmax -> class 0
    u_weak = torch.tensor([[0.0, 0.0], [0.0, 5.0]])
    u_strong = torch.tensor([[0.0, 5.0], [5.0, 0.0]])  # disagrees with the weak view on purpose
    out = fm.losses(LogitsAreInputs(), make_batch(u_weak, u_strong, torch.zeros(1, 2), torch.tensor([0])), 0)
    assert out["mask"].tolist() == [True, True]
    assert out["pseudo_labels"].tolist() == [0, 1]
    expected = (torch.nn.functional.cross_entropy(u_strong, torch.tensor([0, 1]), reduction="none")).mean()
    assert out["unsup"].item() == pytest.approx(expected.item())


def test_no_gradient_flows_through_the_targets():
    fm = algorithms.get("fixmatch", threshold=0.1)
    u_weak = torch.randn(4, 3, requires_grad=True)
    u_strong = torch.randn(4, 3, requires_grad=True)
    x_l = torch.randn(2, 3, requires_grad=True)
    model = LogitsAreInputs()
    out = fm.losses(model, make_batch(u_weak, u_strong, x_l, torch.tensor([0, 1])), 0)
    out["total"].backward()
    assert u_weak.grad is None or torch.count_nonzero(u_weak.grad) == 0  # targets are constants
    assert u_strong.grad is not None and u_strong.grad.abs().sum() > 0
    assert model.scale.grad is not None
    assert not out["pseudo_labels"].requires_grad


def test_nothing_confident_means_zero_unsupervised_loss():
    fm = algorithms.get("fixmatch")
    u = torch.zeros(3, 4)  # uniform: confidence 0.25 < 0.95
    out = fm.losses(LogitsAreInputs(), make_batch(u, torch.randn(3, 4), torch.zeros(1, 4), torch.tensor([2])), 0)
    assert out["unsup"].item() == 0.0
    assert out["mask_rate"].item() == 0.0


def test_supervised_ignores_unlabeled_data():
    sup = algorithms.get("supervised")
    assert not sup.uses_unlabeled
    out = sup.losses(LogitsAreInputs(), {"labeled": {"weak": torch.zeros(2, 5), "y": torch.tensor([0, 3])}}, 0)
    assert out["total"].item() == pytest.approx(math.log(5))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"threshold": 0.0}, "threshold must be in (0, 1]"),
        ({"threshold": 1.5}, "threshold must be in (0, 1]"),
        ({"lambda_u": -1.0}, "lambda_u must be 0 or more"),
        ({"temperature": 0.0}, "temperature must be greater than 0"),
        ({"treshold": 0.9}, "did you mean 'threshold'"),
        ({"da_momentum": 1.0}, "da_momentum must be in [0, 1)"),
        ({"distribution_alignment": "ture"}, "distribution_alignment must be true or false, got 'ture'"),
    ],
)
def test_bad_hyper_parameters_are_refused(kwargs, fragment):
    with pytest.raises(FewLabelsError, match=None) as err:
        algorithms.get("fixmatch", **kwargs)
    assert fragment in str(err.value)


def test_unknown_algorithm_suggests_the_closest():
    with pytest.raises(FewLabelsError) as err:
        algorithms.get("fixmatc")
    assert "did you mean 'fixmatch'" in str(err.value)


def test_options_lists_paper_defaults():
    assert algorithms.options("fixmatch") == {"threshold": 0.95, "lambda_u": 1.0, "temperature": 1.0,
                                              "distribution_alignment": False, "da_momentum": 0.99}


def test_distribution_alignment_revives_a_class_the_model_absorbs():
    """p_model = (0.8, 0.2) after one update from momentum 0: q = (0.6, 0.4) becomes
    (0.6 / 0.8, 0.4 / 0.2) normalised = (0.273, 0.727), so the pseudo-label flips to class 1."""
    fm = algorithms.get("fixmatch", threshold=0.7, distribution_alignment=True, da_momentum=0.0)
    fm.setup(context(num_classes=2))
    p = torch.tensor([[0.6, 0.4], [1.0, 0.0]])  # batch mean (0.8, 0.2)
    u_weak = p.clamp(min=1e-9).log()
    out = fm.losses(LogitsAreInputs(), make_batch(u_weak, torch.zeros(2, 2), torch.zeros(1, 2), torch.tensor([0])), 0)
    assert fm.alignment.p_model.tolist() == pytest.approx([0.8, 0.2])
    assert out["pseudo_labels"].tolist() == [1, 0]
    assert out["mask"].tolist() == [True, True]  # 0.727 >= 0.7; the confident sample stays confident
    plain = algorithms.get("fixmatch", threshold=0.7)
    plain.setup(context(num_classes=2))
    assert not hasattr(plain, "alignment")  # off by default: checkpoints of plain FixMatch are unchanged
    out = plain.losses(LogitsAreInputs(), make_batch(u_weak, torch.zeros(2, 2), torch.zeros(1, 2), torch.tensor([0])), 0)
    assert out["pseudo_labels"].tolist() == [0, 0] and out["mask"].tolist() == [False, True]
    # the running p_model is state: in the checkpoint, so a resumed run aligns as the unbroken one does
    assert torch.equal(fm.state_dict()["alignment.p_model"], fm.alignment.p_model)
    fresh = algorithms.get("fixmatch", threshold=0.7, distribution_alignment=True, da_momentum=0.0)
    fresh.setup(context(num_classes=2))
    fresh.load_state_dict(fm.state_dict())
    assert fresh.alignment.p_model.tolist() == pytest.approx([0.8, 0.2])


def test_fixmatch_la_aligns_too():
    la = algorithms.get("fixmatch-la", threshold=0.7, distribution_alignment=True, da_momentum=0.0)
    la.setup(context(num_classes=2, labeled_y=torch.tensor([0, 1])))
    p = torch.tensor([[0.6, 0.4], [1.0, 0.0]])
    out = la.losses(LogitsAreInputs(), make_batch(p.clamp(min=1e-9).log(), torch.zeros(2, 2), torch.zeros(2, 2),
                                                   torch.tensor([0, 1])), 0)
    assert out["pseudo_labels"].tolist() == [1, 0]
