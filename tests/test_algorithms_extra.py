"""SimMatch, ShrinkMatch, SAA and DASO.

For each: the loss on a batch small enough to check by hand (targets, masks, weights, and which
inputs receive gradients), its state through a weights-only checkpoint round trip, refused
options, and a short real run on digits that must learn.
"""

import io
import math

import pytest
import torch
from stand_ins import LogitsAreInputs, context
from torch import nn

from fewlabels import algorithms
from fewlabels.algorithms.saa import otsu_threshold, splice_halves
from fewlabels.algorithms.shrinkmatch import shrunk_space
from fewlabels.augment import RandAugment
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, train


class HalfBrightness(nn.Module):
    """(B, 1, H, W) images -> logits 10 * (mean of the top half, mean of the bottom half); records its inputs."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.feature_dim = 16
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        h = x.shape[2] // 2
        logits = 10 * torch.stack([x[:, 0, :h].mean((1, 2)), x[:, 0, h:].mean((1, 2))], 1) * self.scale
        return logits, x.flatten(1)


def make_batch(x_l, y, u_weak, u_strong, l_index=None, u_index=None, seed=0):
    labeled = {"weak": x_l, "y": torch.as_tensor(y)}
    if l_index is not None:
        labeled["index"] = torch.as_tensor(l_index)
    return {"labeled": labeled,
            "unlabeled": {"weak": u_weak, "strong": u_strong,
                          "index": torch.arange(len(u_weak)) if u_index is None else torch.as_tensor(u_index)},
            "generator": torch.Generator().manual_seed(seed)}


def softplus(v):
    return math.log1p(math.exp(v))


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def copy_of(gen):
    return torch.Generator().set_state(gen.get_state())


def no_grad(t):
    return t.grad is None or not t.grad.any()


# ---- SimMatch


def test_simmatch_loss_by_hand_unfolding_aggregation_and_bank_update():
    sm = algorithms.get("simmatch", threshold=0.6, temperature=1.0, alpha=0.5, bank_momentum=0.5, dist_align=False)
    sm.setup(context(LogitsAreInputs(), 2, 10, 100, labeled_y=torch.tensor([0, 1, 1])))
    sm.head = nn.Identity()  # embeddings = normalised features = normalised inputs
    sm.bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    sm.bank_labels, sm.filled = torch.tensor([0, 1, 1]), torch.ones(3, dtype=torch.bool)
    u_w = torch.tensor([[2.0, 0.0]], requires_grad=True)
    u_s = torch.tensor([[0.0, 1.0]], requires_grad=True)
    out = sm.losses(LogitsAreInputs(), make_batch(torch.tensor([[3.0, 4.0]]), [0], u_w, u_s, l_index=[0]), 0)

    p = [sigmoid(2), sigmoid(-2)]  # class pseudo-label
    e = [math.exp(s) for s in (1.0, 0.0, 0.6)]  # z_w = (1, 0): similarities 1, 0, .6 to the three labeled keys
    q = [v / sum(e) for v in e]
    unfolded = [q[0] * p[0], q[1] * p[1], q[2] * p[1]]  # each key scaled by p at its label
    q_hat = [v / sum(unfolded) for v in unfolded]
    q_agg = [q[0], q[1] + q[2]]  # instance similarity summed per class
    p_hat = [0.5 * p[c] + 0.5 * q_agg[c] for c in range(2)]
    assert out["mask"].tolist() == [True] and p_hat[0] >= 0.6 and out["pseudo_labels"].tolist() == [0]
    unsup = -(p_hat[0] * math.log(sigmoid(-1)) + p_hat[1] * math.log(sigmoid(1)))  # soft target, strong logits (0, 1)
    assert out["unsup"].item() == pytest.approx(unsup, rel=1e-5)
    s = [0.0, 1.0, 0.8]  # z_s = (0, 1) against the keys
    lse = math.log(sum(math.exp(v) for v in s))
    instance = -sum(t * (v - lse) for t, v in zip(q_hat, s))
    assert out["instance"].item() == pytest.approx(instance, rel=1e-5)
    assert out["sup"].item() == pytest.approx(softplus(1.0))
    assert out["total"].item() == pytest.approx(softplus(1.0) + unsup + instance, rel=1e-5)
    out["total"].backward()
    assert no_grad(u_w) and u_s.grad.abs().sum() > 0
    # the labeled embedding (.6, .8) entered slot 0: normalize(.5 (1, 0) + .5 (.6, .8)), label 0
    assert torch.allclose(sm.bank[0], torch.tensor([0.8, 0.4]) / math.sqrt(0.8))
    assert sm.bank_labels.tolist() == [0, 1, 1] and not sm.bank.requires_grad


def test_simmatch_empty_bank_fills_its_slots_and_falls_back_to_round_robin():
    sm = algorithms.get("simmatch", proj_dim=2, dist_align=False)
    sm.setup(context(LogitsAreInputs(), 2, 10, 100, labeled_y=torch.tensor([0, 1, 0, 1])))
    sm.head = nn.Identity()
    u = torch.tensor([[5.0, 0.0], [0.0, 1.0]])
    out = sm.losses(LogitsAreInputs(), make_batch(torch.tensor([[0.0, 2.0]]), [1], u, u, l_index=[3]), 0)
    assert out["instance"].item() == 0.0  # nothing stored yet: no instance term, p^ = p
    assert out["mask"].tolist() == [True, False]
    assert sm.filled.tolist() == [False, False, False, True] and sm.bank[3].tolist() == [0.0, 1.0]
    sm.store(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]), None)  # no labeled index: slots 0, 1 in turn
    assert sm.filled.tolist() == [True, True, False, True] and sm.bank_labels.tolist() == [0, 1, 0, 1]


def test_simmatch_sample_twice_in_a_batch_stores_the_mean_direction_of_both_keys():
    sm = algorithms.get("simmatch", proj_dim=2, bank_momentum=0.5, dist_align=False)
    sm.setup(context(LogitsAreInputs(), 2, 10, 100, labeled_y=torch.tensor([0, 1, 1])))
    sm.head = nn.Identity()
    sm.bank, sm.bank_labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), torch.tensor([0, 1, 0])
    sm.filled = torch.tensor([True, True, False])
    x_l = torch.tensor([[3.0, 4.0], [4.0, 3.0], [5.0, 0.0], [0.0, 2.0]])  # embeddings (.6, .8), (.8, .6), (1, 0), (0, 1)
    u = torch.tensor([[1.0, 0.0]])
    sm.losses(LogitsAreInputs(), make_batch(x_l, [0, 0, 1, 1], u, u, l_index=[0, 0, 2, 2]), 0)
    # slot 0 (filled) twice: keys normalize(.5 (1, 0) + .5 z) = (.8, .4) / sqrt(.8) and (.9, .3) / sqrt(.9), then their mean direction
    a, b = (0.8 / math.sqrt(0.8), 0.4 / math.sqrt(0.8)), (0.9 / math.sqrt(0.9), 0.3 / math.sqrt(0.9))
    mean = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    norm = math.hypot(*mean)
    assert torch.allclose(sm.bank[0], torch.tensor([mean[0] / norm, mean[1] / norm]))
    # slot 2 (empty) twice: the embeddings themselves, (1, 0) and (0, 1), averaged and normalised
    assert torch.allclose(sm.bank[2], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert sm.bank[1].tolist() == [0.0, 1.0] and sm.filled.all() and sm.bank_labels.tolist() == [0, 1, 1]


# ---- ShrinkMatch


def test_shrunk_space_drops_the_fewest_confusion_classes():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05],    # drop rank 2: .5/.7 = .71; ranks 2-3: .5/.55 = .91 -> keep {0, 3}
                          [0.1, 0.6, 0.25, 0.05],    # order 1, 2, 0, 3: .6/.75 = .8; .6/.65 = .92 -> keep {1, 3}
                          [0.4, 0.3, 0.2, 0.1]])     # .4/.7, .4/.5 = .8: never reaches .9 -> no space
    top, keep, found = shrunk_space(probs, 0.9)
    assert top.tolist() == [0, 1, 0]
    assert keep[0].tolist() == [True, False, False, True] and keep[1].tolist() == [False, True, False, True]
    assert found.tolist() == [True, True, False]
    _, _, found2 = shrunk_space(torch.tensor([[0.6, 0.4]]), 0.9)  # two classes: nothing to shrink
    assert found2.tolist() == [False]


def test_shrinkmatch_loss_by_hand():
    sh = algorithms.get("shrinkmatch", threshold=0.9, lambda_shrink=2.0, momentum=0.5)
    sh.setup(context(LogitsAreInputs(4), 4, 10, 100))
    sh.head = nn.Identity()  # auxiliary logits = strong features = strong inputs
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.4, 0.3, 0.2, 0.1], [0.97, 0.01, 0.01, 0.01]])
    u_w = probs.log().requires_grad_(True)  # softmax gives these probabilities back
    u_s = torch.tensor([[1.0, 0.0, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    out = sh.losses(LogitsAreInputs(4), make_batch(torch.zeros(1, 4), [0], u_w, u_s), 0)
    assert out["mask"].tolist() == [False, False, True] and out["pseudo_labels"].tolist() == [0, 0, 0]
    unsup = math.log(4) / 3  # the certain sample: strong logits all 0, over the batch of 3
    shrink = 0.5 * softplus(1.0) / 3  # sample 0 in {0, 3}: -log(e^1 / (e^1 + e^2)), weighed by its confidence .5
    assert out["unsup"].item() == pytest.approx(unsup, rel=1e-5)
    assert out["shrink"].item() == pytest.approx(shrink, rel=1e-5)
    assert out["certain_ratio"].item() == pytest.approx(1 / 3)  # r_0: the first batch's ratio
    assert out["total"].item() == pytest.approx(math.log(4) + unsup + 2.0 * shrink / 3, rel=1e-5)
    out["total"].backward()
    assert no_grad(u_w)
    assert u_s.grad[0, 0] != 0 and u_s.grad[0, 3] != 0 and u_s.grad[0, 1] == 0 and u_s.grad[0, 2] == 0  # dropped classes
    assert not u_s.grad[1].any()  # uncertain and not shrinkable
    assert u_s.grad[2].abs().sum() > 0
    certain = torch.tensor([[0.99, 0.003, 0.003, 0.004]] * 3).log()
    again = sh.losses(LogitsAreInputs(4), make_batch(torch.zeros(1, 4), [0], certain, torch.zeros(3, 4)), 1)
    assert again["certain_ratio"].item() == pytest.approx(0.5 / 3 + 0.5 * 1.0)  # r <- .5 r + .5 * 1


# ---- SAA


def test_otsu_threshold_splits_two_clusters():
    t = otsu_threshold(torch.tensor([0.1, 0.12, 0.2, 3.0, 3.1]))
    assert 0.2 < t < 3.0
    assert otsu_threshold(torch.tensor([0.5, 0.5])) == 0.5  # one value: nothing below


def test_saa_history_and_naive_selection_once_per_pass():
    saa = algorithms.get("saa", momentum=0.5)
    saa.setup(context(None, 2, 4, 100))
    saa.record(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
    assert saa.history[:2].tolist() == [1.0, 2.0] and saa.history[2:].isnan().all()  # first loss taken as it is
    assert not saa.naive.any()
    saa.record(torch.tensor([2, 3]), torch.tensor([0.1, 5.0]))  # the pass is complete: select
    # Otsu on {0.1, 1, 2, 5}: between-class variance is largest for the cut {0.1, 1, 2} | {5}
    assert saa.naive.tolist() == [True, True, True, False]
    saa.record(torch.tensor([0]), torch.tensor([3.0]))
    assert saa.history[0].item() == pytest.approx(0.5 * 1.0 + 0.5 * 3.0) and saa.seen == 1


def test_saa_sample_twice_in_a_batch_gets_the_mean_of_both_updates():
    saa = algorithms.get("saa", momentum=0.5)
    saa.setup(context(None, 2, 3, 100))
    saa.record(torch.tensor([0, 0, 1]), torch.tensor([1.0, 3.0, 2.0]))
    assert saa.history[:2].tolist() == [2.0, 2.0] and saa.history[2].isnan()  # first losses 1 and 3: their mean
    saa.record(torch.tensor([0, 0]), torch.tensor([4.0, 6.0]))
    assert saa.history[0].item() == (0.5 * 2 + 0.5 * 4 + 0.5 * 2 + 0.5 * 6) / 2


def test_saa_splices_naive_samples_and_reweighs_nothing_else():
    saa = algorithms.get("saa")
    saa.setup(context(None, 2, 2, 100))
    saa.naive = torch.tensor([True, False])
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1.0  # top half bright: logits (10, 0), confident class 0
    u_w = torch.cat([top, torch.full((1, 1, 4, 4), 0.5)])  # second: logits (5, 5), not confident
    u_s = torch.zeros(2, 1, 4, 4, requires_grad=True)
    model = HalfBrightness()
    out = saa.losses(model, make_batch(torch.zeros(1, 1, 4, 4), [0], u_w, u_s, seed=7), 0)
    seen = model.inputs[0][3:]  # labeled, 2 weak, then the 2 strong views as the model saw them
    gen = torch.Generator().manual_seed(7)  # the same draws again: a resumed run splices the same way
    second = RandAugment()(u_w[:1], gen)
    replaced_top = bool(torch.rand(1, generator=copy_of(gen)) < 0.5)
    assert torch.equal(seen[:1], splice_halves(torch.zeros(1, 1, 4, 4), second, gen))
    assert torch.equal(seen[1], u_s[1].detach())  # not naive: the loop's strong view as it is
    assert out["mask"].tolist() == [True, False] and out["naive_rate"].item() == 0.5
    logits = 10 * torch.stack([seen[:, 0, :2].mean((1, 2)), seen[:, 0, 2:].mean((1, 2))], 1)
    ce0 = softplus(float(logits[0, 1] - logits[0, 0]))  # against pseudo-label 0
    assert out["unsup"].item() == pytest.approx(ce0 / 2, rel=1e-5)
    assert saa.history.tolist() == pytest.approx([ce0, math.log(2)], rel=1e-5)  # unmasked losses recorded
    out["total"].backward()
    assert not u_s.grad[1].any()  # masked
    kept = torch.zeros(4, 4, dtype=torch.bool)  # the half of the loop's strong view that stayed carries the gradient
    kept[(slice(2, 4), slice(None)) if replaced_top else (slice(None), slice(2, 4))] = True
    assert u_s.grad[0, 0][kept].abs().min() > 0 and not u_s.grad[0, 0][~kept].any()


def test_saa_on_flexmatch_uses_curriculum_thresholds():
    saa = algorithms.get("saa", base="flexmatch")
    saa.setup(context(None, 3, 5, 100))
    assert type(saa.weigh).__name__ == "CurriculumThreshold" and len(saa.weigh.predictions) == 5


# ---- DASO


def test_daso_queue_prototypes_and_blend_weights():
    daso = algorithms.get("daso", queue_size=2, t_dist=1.0)
    daso.setup(context(LogitsAreInputs(), 2, 10, 100))
    daso.enqueue(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
    assert daso.prototypes() is None  # class 1 has no labeled feature yet
    daso.enqueue(torch.tensor([[0.0, 2.0], [5.0, 0.0]]), torch.tensor([1, 0]))  # (5, 0) replaces the oldest, (1, 0)
    assert daso.prototypes().tolist() == [[4.0, 0.0], [0.0, 2.0]]
    daso.counts = torch.tensor([30.0, 10.0])
    assert daso.blend_weights().tolist() == pytest.approx([1.0, 1 / 3])
    daso.t_dist = 0.5
    assert daso.blend_weights().tolist() == pytest.approx([1.0, 1 / 9])


def test_daso_loss_by_hand():
    model = LogitsAreInputs()
    daso = algorithms.get("daso", threshold=0.7, t_proto=1.0, t_dist=1.0, queue_size=2, warmup=0.0, lambda_align=2.0)
    daso.setup(context(model, 2, 10, 100))
    daso.enqueue(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0, 1, 1]))
    daso.counts = torch.tensor([3.0, 1.0])  # class 0 over-predicted: v = (1, 1/3)
    u_w = torch.tensor([[2.0, 0.0], [0.0, 0.5]], requires_grad=True)
    u_s = torch.tensor([[1.0, 1.0], [1.0, 0.0]], requires_grad=True)
    out = daso.losses(model, make_batch(torch.tensor([[1.0, 0.0]]), [0], u_w, u_s), 0)  # its teacher feature (1, 0) joins class 0
    # sample 0: linear says class 0 (v = 1), so p' = semantic = softmax(cos to (1,0), (0,1)) = softmax(1, 0)
    # sample 1: linear softmax(0, .5) says class 1 (v = 1/3): p' = 2/3 linear + 1/3 softmax(0, 1)
    p1 = 2 / 3 * sigmoid(0.5) + 1 / 3 * sigmoid(1.0)
    assert out["pseudo_labels"].tolist() == [0, 1] and out["mask"].tolist() == [True, False]  # .73 >= .7 > p1 = .66
    assert p1 < 0.7
    assert out["unsup"].item() == pytest.approx(math.log(2) / 2, rel=1e-5)  # strong (1, 1) against class 0
    align1 = sigmoid(-1) * softplus(-1) + sigmoid(1) * softplus(1)  # target softmax(0, 1), strong cos (1, 0)
    align = (math.log(2) + align1) / 2  # strong (1, 1) is equally close to both prototypes
    assert out["align"].item() == pytest.approx(align, rel=1e-5)
    assert out["total"].item() == pytest.approx(softplus(-1) + math.log(2) / 2 + 2.0 * align, rel=1e-5)
    out["total"].backward()
    assert no_grad(u_w) and u_s.grad[0].abs().sum() > 0 and u_s.grad[1].abs().sum() > 0  # alignment: every sample
    assert all(p.grad is None for p in daso.teacher.module.parameters())
    assert daso.pending.tolist() == [1.0, 1.0] and daso.counts.tolist() == [3.0, 1.0]  # counted, period not over


def test_daso_warmup_is_plain_fixmatch_and_counts_roll_over():
    daso = algorithms.get("daso", warmup=0.5, dist_period=2, t_proto=1.0)
    model = LogitsAreInputs()
    daso.setup(context(model, 2, 10, 10))
    u = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    batch = make_batch(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 1], u, u)
    out = daso.losses(model, batch, 0)
    assert out["align"].item() == 0.0 and out["mask"].tolist() == [True, True]  # linear confidences .98
    assert daso.pending.tolist() == [1.0, 1.0]
    out = daso.losses(model, batch, 5)  # warm-up over: semantic labels and alignment on
    assert out["align"].item() > 0 and daso.counts.tolist() == [2.0, 2.0] and daso.pending.tolist() == [0.0, 0.0]


# ---- every algorithm: state round trip, options


def exercise(name, options, seed=0):
    torch.manual_seed(seed)
    if name == "saa":
        model, k = HalfBrightness(), 2
        algorithm = algorithms.get(name, **options)
        algorithm.setup(context(model, k, 8, 20))

        def draw(g):
            return make_batch(torch.rand(4, 1, 4, 4, generator=g), [0, 1, 0, 1], torch.rand(8, 1, 4, 4, generator=g),
                              torch.rand(8, 1, 4, 4, generator=g), seed=int(torch.randint(100, (1,), generator=g)))
    else:
        model, k = LogitsAreInputs(3), 3
        algorithm = algorithms.get(name, **options)
        kwargs = {"labeled_y": torch.tensor([0, 1, 2, 0, 1, 2])} if name == "simmatch" else {}
        algorithm.setup(context(model, k, 8, 20, **kwargs))

        def draw(g):
            return make_batch(torch.randn(3, 3, generator=g), [0, 1, 2], torch.randn(8, 3, generator=g) * 3,
                              torch.randn(8, 3, generator=g), l_index=torch.randperm(6, generator=g)[:3])
    return model, algorithm, draw


@pytest.mark.parametrize("name", ["simmatch", "shrinkmatch", "saa", "daso"])
def test_a_checkpoint_without_the_state_is_refused_with_the_fix(name):
    _, algorithm, _ = exercise(name, {})
    with pytest.raises(RuntimeError, match=r"(?s)Error\(s\) in loading state_dict for .*Missing key\(s\)"):
        algorithm.load_state_dict({})


@pytest.mark.parametrize("name, options", [("simmatch", {}), ("shrinkmatch", {}), ("saa", {}), ("saa", {"base": "flexmatch"}),
                                           ("daso", {"warmup": 0.0, "dist_period": 2})])
def test_state_round_trip_through_a_weights_only_checkpoint(name, options):
    model, a, draw = exercise(name, options)
    g = torch.Generator().manual_seed(1)
    for step in range(12):  # SAA: three passes over its 8 samples, so naive samples are selected
        a.losses(model, draw(g), step)
        a.after_step(model)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    _, b, _ = exercise(name, options, seed=1)  # a differently initialised head
    b.load_state_dict(torch.load(buf, weights_only=True))
    probe = draw(g)
    la = a.losses(model, {**probe, "generator": torch.Generator().manual_seed(99)}, 12)
    lb = b.losses(model, {**probe, "generator": torch.Generator().manual_seed(99)}, 12)
    assert la["total"].item() == pytest.approx(lb["total"].item(), rel=1e-6)
    assert torch.equal(la["mask"], lb["mask"]) and torch.equal(la["pseudo_labels"], lb["pseudo_labels"])
    if name == "saa":
        assert a.naive.any() and torch.equal(a.naive, b.naive)
    with pytest.raises(RuntimeError, match="Missing key"):
        b.load_state_dict({})


@pytest.mark.parametrize("name, kwargs, fragment", [
    ("simmatch", {"temperature": 0}, "temperature must be greater than 0"),
    ("simmatch", {"alpha": 1.5}, "alpha must be in (0, 1]"),
    ("simmatch", {"bank_momentum": 1.0}, "bank_momentum must be in [0, 1)"),
    ("simmatch", {"proj_dim": 0}, "proj_dim must be a whole number of at least 1"),
    ("shrinkmatch", {"threshold": 0}, "threshold must be in (0, 1]"),
    ("shrinkmatch", {"lambda_shrink": -1}, "lambda_shrink must be 0 or more"),
    ("shrinkmatch", {"momentum": 1}, "momentum must be in [0, 1)"),
    ("saa", {"base": "mixmatch"}, "base must be 'fixmatch' or 'flexmatch'"),
    ("saa", {"momentum": -0.1}, "momentum must be in [0, 1)"),
    ("daso", {"t_proto": 0}, "t_proto must be greater than 0"),
    ("daso", {"queue_size": 0}, "queue_size must be a whole number of at least 1"),
    ("daso", {"warmup": 2}, "warmup must be a fraction of the run in [0, 1]"),
])
def test_bad_options(name, kwargs, fragment):
    with pytest.raises(FewLabelsError) as err:
        algorithms.get(name, **kwargs)
    assert fragment in str(err.value)


def test_unusable_models_and_data_are_refused():
    with pytest.raises(FewLabelsError, match="feature_dim"):
        algorithms.get("simmatch").setup(context(nn.Linear(2, 2), 2, 10, 10))
    with pytest.raises(FewLabelsError, match="feature_dim"):
        algorithms.get("shrinkmatch").setup(context(nn.Linear(2, 2), 2, 10, 10))
    with pytest.raises(FewLabelsError, match="feature vectors"):
        algorithms.get("saa").check_data((64,), 10)


# ---- short real runs


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["simmatch", "shrinkmatch", "saa", "daso"])
def test_short_digits_run_learns(name, tmp_path):
    res = train(TrainConfig(dataset="digits", labels_per_class=5, algorithm=name, iterations=300, eval_every=300,
                            batch_size=16, uratio=3, out=str(tmp_path / "r")), progress=False)
    assert res["test_accuracy"] > 0.8  # chance is 0.10; the model at step 0 is near chance
    assert res["final_mask_rate"] > 0.3 and res["final_pseudo_label_acc"] > 0.8  # the pseudo-labels it trains on are mostly right


@pytest.mark.parametrize("name, option", [("freematch", "momentum"), ("softmatch", "momentum"), ("daso", "ema_decay"),
                                          ("shrinkmatch", "momentum"), ("saa", "momentum"), ("simmatch", "bank_momentum"),
                                          ("elr", "beta"), ("remixmatch", "da_momentum")])
@pytest.mark.parametrize("value", [1.0, -0.1, True, "0.9"])
def test_momenta_must_be_in_unit_interval_open_at_one(name, option, value):
    with pytest.raises(FewLabelsError, match=rf"{name}: {option} must be in \[0, 1\), got"):
        algorithms.get(name, **{option: value})
    algorithms.get(name, **{option: 0.0})
