"""SLA and SLA-FixMatch: joint labels, loss and aggregation by hand, where the gradients go, state, bad input, short runs."""

import io
import math

import numpy as np
import pytest
import torch
from stand_ins import context
from torch import nn

from fewlabels import algorithms, models
from fewlabels.algorithms.sla import aggregate, aggregated_logits, aggregated_predict, joint_labels
from fewlabels.augment import get_group
from fewlabels.data import DataSource
from fewlabels.data.arrays import from_arrays
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate import accuracy
from fewlabels.train import TrainConfig
from fewlabels.train.loop import Trainer, prepare


def tiny_model(num_classes=3, side=8):
    torch.manual_seed(0)
    return models.get("cnn", (1, side, side), num_classes)


def ready(name="sla", num_classes=3, model=None, **options):
    alg = algorithms.get(name, **options)
    model = model if model is not None else tiny_model(num_classes)
    alg.setup(context(model, num_classes, 16, 100))
    return alg, model


def test_joint_labels_are_class_major_over_an_element_major_stack():
    # copies stacked element-major: rows [j*B, (j+1)*B) are t_j(x); joint label (y, j) = y * M + j
    assert joint_labels(torch.tensor([1, 0]), 4).tolist() == [4, 0, 5, 1, 6, 2, 7, 3]
    assert joint_labels(torch.tensor([2]), 2).tolist() == [4, 5]


def test_sla_sd_loss_by_hand():
    """2 classes, rot4, one image of class 0: joint logits and single-head logits are given."""
    sla, _ = ready(num_classes=2, beta=0.5)
    sla.joint_head = nn.Identity()  # the 'features' below are the joint logits themselves
    m = 4
    joint = torch.zeros(m, 2 * m)
    for j in range(m):
        joint[j, 0 * m + j] = math.log(7)  # copy t_j: logit ln 7 at its true joint label (0, j), 0 elsewhere
    single = torch.zeros(m, 2)  # C-way head: uniform on x (rows 1..3, the turned copies, must be ignored)
    single[1:] = 100.0
    out = sla.labeled_losses(single, joint, torch.tensor([0]))
    # joint CE per copy: -log(7 / (7 + 7 * 1)) = ln 2
    assert out["joint"].item() == pytest.approx(math.log(2))
    # s = (mean_j ln 7, mean_j 0) -> P_agg = (7/8, 1/8); KL(P_agg || (1/2, 1/2))
    kl = 7 / 8 * math.log(7 / 4) + 1 / 8 * math.log(1 / 4)
    assert out["distill"].item() == pytest.approx(kl)
    assert out["single_ce"].item() == pytest.approx(math.log(2))
    assert out["sup"].item() == pytest.approx(math.log(2) + kl + 0.5 * math.log(2))


def test_aggregation_takes_each_copys_own_transformation_logit():
    m, b, c = 4, 2, 3
    z = torch.full((m * b, c * m), 100.0)  # logits of the wrong transformation: must not count
    for j in range(m):
        for s in range(b):
            for i in range(c):
                z[j * b + s, i * m + j] = float(10 * s + i * (j + 1))  # sample s, class i, copy j
    s_expected = torch.tensor([[10.0 * s + i * 2.5 for i in range(c)] for s in range(b)])  # mean_j (j + 1) = 2.5
    assert torch.equal(aggregate(z, m), s_expected)
    # against a literal loop on random logits, and for a 2-element group
    g = torch.Generator().manual_seed(0)
    for m in (2, 4, 8):
        z = torch.randn(m * b, c * m, generator=g)
        loop = torch.stack([torch.stack([z[j * b:(j + 1) * b, i * m + j] for i in range(c)], 1) for j in range(m)]).mean(0)
        assert torch.allclose(aggregate(z, m), loop)


def test_aggregated_predict_is_the_softmax_of_the_mean_matching_logits():
    sla, model = ready()
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    model.train()
    probs = aggregated_predict(model, sla.joint_head, x, "rot4", batch_size=2)
    assert model.training and sla.joint_head.training  # modes restored
    model.eval()
    with torch.no_grad():
        _, feats = model(get_group("rot4").all(x))
        joint = sla.joint_head(feats).view(4, 5, 3, 4)  # [j, b, i, k]
        s = torch.stack([joint[j, :, :, j] for j in range(4)]).mean(0)
    assert torch.allclose(probs, torch.softmax(s, -1), atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(5))
    assert torch.allclose(aggregated_logits(model, sla.joint_head, x, get_group("rot4")), s, atol=1e-5)
    ema = sla.inference_variants(model, x)["aggregated"]  # EMA head == head before any step
    assert torch.allclose(ema, s, atol=1e-5)


def labeled_batch(n=6, classes=3, seed=0, unlabeled=0):
    g = torch.Generator().manual_seed(seed)
    b = {"labeled": {"weak": torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g),
                     "y": torch.arange(n) % classes}, "unlabeled": {}, "generator": g}
    if unlabeled:
        b["unlabeled"] = {"weak": torch.randint(0, 256, (unlabeled, 1, 8, 8), dtype=torch.uint8, generator=g),
                          "strong": torch.randint(0, 256, (unlabeled, 1, 8, 8), dtype=torch.uint8, generator=g),
                          "index": torch.arange(unlabeled)}
    return b


def grads(loss, params):
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [g is not None and bool(g.abs().sum() > 0) for g in gs]


def test_each_term_trains_what_it_should():
    sla, model = ready()
    out = sla.losses(model, labeled_batch(), 0)
    single_head = list(model.head.parameters())
    joint_head = list(sla.joint_head.parameters())
    backbone = list(model.backbone.parameters())
    # KL: the single-pass head and the backbone (through f(x)); the aggregated target is a constant
    assert all(grads(out["distill"], single_head)) and not any(grads(out["distill"], joint_head))
    assert any(grads(out["distill"], backbone))
    # joint CE: the joint head and the backbone, never the single head
    assert all(grads(out["joint"], joint_head)) and not any(grads(out["joint"], single_head))
    assert any(grads(out["joint"], backbone))
    # beta * CE: the single head and the backbone
    assert all(grads(out["single_ce"], single_head)) and not any(grads(out["single_ce"], joint_head))
    trainable = [p for p in sla.parameters() if p.requires_grad]
    assert trainable == joint_head  # the loop's optimizer trains the joint head (its EMA copy is frozen)


def test_sla_fixmatch_adds_the_threshold_familys_term():
    from fewlabels.algorithms.components.consistency import joint_forward, thresholded_consistency
    from fewlabels.algorithms.components.thresholds import FixedThreshold

    alg, model = ready("sla-fixmatch", threshold=0.3, lambda_u=2.0)
    batch = labeled_batch(unlabeled=8)
    model.train()
    out = alg.losses(model, batch, 0)
    x, u = batch["labeled"]["weak"], batch["unlabeled"]
    (ll, lw, ls), (fl, _, _) = joint_forward(model, get_group("rot4").all(x), u["weak"], u["strong"])
    unsup, pseudo, weight = thresholded_consistency(lw, ls, FixedThreshold(0.3), u["index"])
    sup = alg.labeled_losses(ll, fl, batch["labeled"]["y"])["sup"]
    assert out["unsup"].item() == pytest.approx(unsup.item())
    assert out["total"].item() == pytest.approx(sup.item() + 2.0 * unsup.item(), rel=1e-5)
    assert torch.equal(out["pseudo_labels"], pseudo) and torch.equal(out["mask"], weight >= 0.5)
    assert algorithms.get("sla-fixmatch").uses_unlabeled and not algorithms.get("sla").uses_unlabeled


def test_state_round_trip_through_a_weights_only_checkpoint():
    a, model = ready()
    opt = torch.optim.SGD(list(model.parameters()) + [p for p in a.parameters() if p.requires_grad], lr=0.1)
    for step in range(3):
        loss = a.losses(model, labeled_batch(seed=step), step)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        a.after_step(model)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b, _ = ready(model=model)
    assert not torch.equal(b.joint_head.weight, a.joint_head.weight)
    b.load_state_dict(state)
    assert torch.equal(b.joint_head.weight, a.joint_head.weight)
    assert torch.equal(b.joint_head_ema.module.weight, a.joint_head_ema.module.weight)
    assert b.joint_head_ema.updates == 3
    assert not torch.equal(a.joint_head_ema.module.weight, a.joint_head.weight)  # the EMA lags
    probe = labeled_batch(seed=9)
    model.eval()
    assert a.losses(model, probe, 3)["total"].item() == b.losses(model, probe, 3)["total"].item()
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: .*\"joint_head.weight\""):
        b.load_state_dict({})


@pytest.mark.parametrize("name, shape, fragment", [
    ("sla", (1, 8, 10), "turns images by 90 degrees, which needs square images, but these are 8x10"),
    ("sla-fixmatch", (3, 32, 28), "needs square images, but these are 32x28"),
    ("sla", (64,), "transforms images, but the data are feature vectors"),
])
def test_data_the_group_cannot_transform_is_refused(name, shape, fragment):
    with pytest.raises(FewLabelsError) as err:
        algorithms.get(name).check_data(shape, 10)
    msg = str(err.value)
    assert fragment in msg and msg.count(". ") == 0 and msg.endswith(".")


def test_non_square_images_are_fine_for_groups_without_quarter_turns():
    for group in ("rot2", "hflip"):
        algorithms.get("sla", group=group).check_data((1, 8, 10), 10)
    algorithms.get("sla").check_data((3, 16, 16), 10)


def test_prepare_refuses_before_training():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 6, 10), dtype=np.uint8), np.arange(40) % 2
    source = DataSource(from_arrays(x, y), None)
    cfg = TrainConfig(dataset="arrays", algorithm="sla", labels_per_class=5, iterations=1)
    with pytest.raises(FewLabelsError, match=r"square images, but these are 6x10; use group 'rot2' \(or 'hflip' with hflip=false\)"):
        prepare(cfg, source)
    cfg.options = {"group": "rot2"}
    assert prepare(cfg, source).algorithm.group == "rot2"


@pytest.mark.parametrize("name, kwargs, fragment", [
    ("sla", {"group": "rot3"}, "unknown transformation group 'rot3': did you mean 'rot4'? choose one of rot4, rot2, hflip, rot4-hflip."),
    ("sla", {"group": 4}, "unknown transformation group 4: choose one of rot4, rot2, hflip, rot4-hflip."),
    ("sla", {"beta": -1}, "beta must be 0 or more"),
    ("sla-fixmatch", {"threshold": 0}, "threshold must be in (0, 1]"),
    ("sla-fixmatch", {"lambda_u": -0.5}, "lambda_u must be 0 or more"),
    ("sla-fixmatch", {"temperature": 0}, "temperature must be greater than 0"),
    ("sla", {"threshold": 0.9}, "sla has no option 'threshold'"),
])
def test_bad_options(name, kwargs, fragment):
    with pytest.raises(FewLabelsError) as err:
        algorithms.get(name, **kwargs)
    assert fragment in str(err.value)


def test_options_and_group_size():
    assert algorithms.options("sla") == {"group": "rot4", "beta": 1.0}
    alg, _ = ready(group="rot4-hflip", num_classes=3)
    assert alg.joint_head.out_features == 3 * 8
    assert algorithms.get("sla-fixmatch", group="hflip").hparams()["group"] == "hflip"


def short_run(algorithm, iterations, **kw):
    cfg = TrainConfig(dataset="digits", labels_per_class=5, algorithm=algorithm, iterations=iterations,
                      eval_every=iterations // 2, batch_size=32, uratio=3, **kw)
    trainer = Trainer(prepare(cfg), progress=False)
    res = trainer.run()
    test = trainer.p.source.test
    aggregated = trainer.algorithm.inference_variants(trainer.ema.module, test.x)["aggregated"]
    assert res["test_accuracy_aggregated"] == accuracy(test.y, aggregated.argmax(1))  # the loop records it
    return res, res["test_accuracy_aggregated"]


@pytest.mark.kernels
def test_short_digits_run_learns():
    res, aggregated_acc = short_run("sla", 150)
    # measured: single pass 0.907, aggregated 0.940 (supervised alone: 0.88 after 200 steps); chance is 0.10
    assert res["test_accuracy"] > 0.8
    assert aggregated_acc > 0.85


@pytest.mark.kernels
def test_short_sla_fixmatch_run_learns():
    res, aggregated_acc = short_run("sla-fixmatch", 120)
    # measured: single pass 0.876, aggregated 0.931, pseudo-labels 100% right
    assert res["test_accuracy"] > 0.75
    assert aggregated_acc > 0.8
    assert res["final_mask_rate"] > 0.0 and res["final_pseudo_label_acc"] > 0.8


@pytest.mark.parametrize("group", ["hflip", "rot4-hflip"])
def test_flip_group_refused_when_the_weak_view_flips(group):
    """A label transformation that is also a random augmentation cannot be predicted: refused before training."""
    with pytest.raises(FewLabelsError, match="already flips images at random"):
        algorithms.get("sla", group=group).check_data((1, 8, 8), 10, hflip=True)
    algorithms.get("sla", group=group).check_data((1, 8, 8), 10, hflip=False)
    algorithms.get("sla", group="rot4").check_data((1, 8, 8), 10, hflip=True)
