"""Algorithms are nn.Modules: state through state_dict, parameters of submodules; the gathers; the one EMA class.

Every registered algorithm is checked (no list kept here): built with its defaults and set up on a
small model with a SetupContext, its ``state_dict`` survives a weights-only checkpoint into a
freshly set-up instance, and its parameters are exactly those of its submodules.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from ranks import on_ranks
from torch import nn

from fewlabels import algorithms, models
from fewlabels.algorithms import SetupContext
from fewlabels.algorithms.components.result import RESERVED, step_result
from fewlabels.collectives import all_gather_with_grad
from fewlabels.models.ema import EMA
from fewlabels.models.heads import projection_mlp

K = 3
SHAPE = (1, 8, 8)


def _context(model: nn.Module, **changes) -> SetupContext:
    fields = dict(model=model, num_classes=K, num_labeled=6, num_unlabeled=12, total_steps=20,
                  labeled_y=torch.tensor([0, 1, 2, 0, 1, 2]), sample_shape=SHAPE)
    return SetupContext(**{**fields, **changes})


def _batch(gen_seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(gen_seed)
    x = torch.rand(4, *SHAPE, generator=g)
    u = torch.rand(6, *SHAPE, generator=g)
    unlabeled = {"index": torch.arange(6)}
    labeled = {"y": torch.tensor([0, 1, 2, 0]), "index": torch.tensor([0, 1, 2, 3])}
    return {"labeled": labeled, "unlabeled": unlabeled, "generator": torch.Generator().manual_seed(gen_seed), "x": x, "u": u}


def _fill_views(algorithm: algorithms.Algorithm, batch: dict) -> dict:
    g = torch.Generator().manual_seed(1)
    for name in algorithm.views.get("labeled", []):
        batch["labeled"][name] = (batch["x"] + 0.01 * torch.rand(batch["x"].shape, generator=g)).clamp(0, 1)
    for name in algorithm.views.get("unlabeled", []):
        batch["unlabeled"][name] = (batch["u"] + 0.01 * torch.rand(batch["u"].shape, generator=g)).clamp(0, 1)
    return batch


def _built(name: str, seed: int = 0) -> tuple[algorithms.Algorithm, nn.Module]:
    torch.manual_seed(seed)
    model = models.get("cnn", SHAPE, K)
    algorithm = algorithms.get(name)
    teacher = models.get("cnn", SHAPE, K) if "teacher" in algorithm.requires else None  # a distillation teacher
    pool = (torch.rand(6, *SHAPE), torch.rand(12, *SHAPE)) if "pool" in algorithm.requires else None  # graph methods
    ctx = _context(model, teacher=teacher, pool=pool)
    algorithms.check_context(algorithm, ctx)
    algorithm.setup(ctx)
    return algorithm, model


@pytest.mark.parametrize("name", algorithms.names())
def test_state_dict_round_trips_through_a_weights_only_checkpoint(name):
    algorithm, model = _built(name, seed=0)
    for step in range(2):  # running state moves away from its initial values
        algorithm.losses(model, _fill_views(algorithm, _batch(step)), step)["total"].backward()
        algorithm.after_step(model)
    buf = io.BytesIO()
    torch.save(algorithm.state_dict(), buf)
    buf.seek(0)
    fresh, _ = _built(name, seed=1)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    mine, theirs = algorithm.state_dict(), fresh.state_dict()
    assert list(mine) == list(theirs)
    for key, value in mine.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(theirs[key], value, rtol=0, atol=0, equal_nan=True, msg=key)  # bit-identical
        else:
            assert value == theirs[key], key


@pytest.mark.parametrize("name", algorithms.names())
def test_parameters_are_those_of_its_submodules_and_never_the_students(name):
    algorithm, model = _built(name)
    from_children = [p for child in algorithm.children() for p in child.parameters()]
    assert [id(p) for p in algorithm.parameters()] == [id(p) for p in from_children]
    student = {id(p) for p in model.parameters()}
    assert not student & {id(p) for p in algorithm.parameters()}
    assert all(m is not model for m in algorithm.modules())


@pytest.mark.parametrize("name", algorithms.names())
def test_losses_return_the_reserved_keys_and_scalar_diagnostics(name):
    algorithm, model = _built(name)
    out = algorithm.losses(model, _fill_views(algorithm, _batch()), 0)
    assert out["total"].dim() == 0
    for key, value in out.items():
        if key not in ("pseudo_labels", "mask"):
            assert isinstance(value, torch.Tensor) and value.dim() == 0, key


def test_step_result_drops_none_and_refuses_non_scalar_diagnostics():
    one = torch.tensor(1.0)
    out = step_result(one, sup=one, unsup=None, peer=one)
    assert list(out) == ["total", "sup", "peer"]
    assert set(RESERVED) >= {"total", "sup", "unsup", "mask_rate", "pseudo_labels", "mask"}
    with pytest.raises(TypeError, match="'spread' must be a 0-dim tensor"):
        step_result(one, spread=torch.ones(3))


def test_projection_mlp_makes_the_weights_of_the_hand_written_head():
    torch.manual_seed(4)
    built = projection_mlp(8, 2, 3, num_layers=3, batchnorm=True, activation=lambda: nn.LeakyReLU(0.1))
    torch.manual_seed(4)
    by_hand = nn.Sequential(nn.Linear(8, 2), nn.BatchNorm1d(2), nn.LeakyReLU(0.1), nn.Linear(2, 2), nn.BatchNorm1d(2),
                            nn.LeakyReLU(0.1), nn.Linear(2, 3))
    assert list(built.state_dict()) == list(by_hand.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), by_hand.state_dict().values()))


# ---- the one EMA class


def test_ema_warms_up_its_decay_and_round_trips_its_state():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    assert not any(p.requires_grad for p in ema.module.parameters())
    expected = 0.0
    for t in range(30):
        with torch.no_grad():
            model.weight.fill_(float(t + 1))
        d = min(0.9, (1.0 + t) / (10.0 + t))  # by hand: 0.1, 0.18..., then 0.9 from t = 71/... on
        expected = d * expected + (1 - d) * float(t + 1)
        ema.update(model)
    assert ema.updates == 30
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), expected))
    buf = io.BytesIO()
    torch.save(ema.state_dict(), buf)
    buf.seek(0)
    other = EMA(nn.Linear(2, 1, bias=False), decay=0.5)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.updates == 30 and other.decay == 0.9 and torch.equal(other.module.weight, ema.module.weight)


def test_ema_loads_the_state_written_before_it_was_a_module():
    model = nn.Linear(2, 1)
    legacy = {"module": {k: v + 1 for k, v in model.state_dict().items()}, "updates": 7, "decay": 0.99}
    ema = EMA(model)
    ema.load_state_dict(legacy)
    assert ema.updates == 7 and ema.decay == 0.99 and torch.equal(ema.module.weight, model.weight + 1)


# ---- a gather that passes gradients


def _contrastive(z: torch.Tensor, everyone: torch.Tensor, offset: int) -> torch.Tensor:
    """InfoNCE of each row against all rows: its own copy in ``everyone`` is the positive."""
    logits = F.normalize(z, dim=-1) @ F.normalize(everyone, dim=-1).t() / 0.5
    return F.cross_entropy(logits, torch.arange(len(z)) + offset)


def _encoder_and_data() -> tuple[nn.Linear, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    encoder = nn.Linear(5, 4)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(4, 5, generator=g))
        encoder.bias.copy_(torch.randn(4, generator=g))
    return encoder, torch.randn(8, 5, generator=g)


def test_all_gather_with_grad_is_the_identity_in_one_process():
    x = torch.randn(3, 2, requires_grad=True)
    y = all_gather_with_grad(x)
    assert torch.equal(y, x)
    (y * torch.arange(6.0).view(3, 2)).sum().backward()
    assert torch.equal(x.grad, torch.arange(6.0).view(3, 2))


def _gather_ranks(rank: int, world: int) -> dict:
    import torch.distributed as dist

    encoder, x = _encoder_and_data()
    n = len(x) // world
    z = encoder(x[rank * n:(rank + 1) * n])
    _contrastive(z, all_gather_with_grad(z), rank * n).backward()
    grads = [encoder.weight.grad.clone(), encoder.bias.grad.clone()]
    for g in grads:  # the loop averages gradients over the ranks
        dist.all_reduce(g)
        g /= world
    return {"weight": grads[0], "bias": grads[1]}


def test_all_gather_with_grad_trains_two_processes_like_one():
    torch.set_num_threads(1)
    got = on_ranks(_gather_ranks)
    encoder, x = _encoder_and_data()
    z = encoder(x)
    _contrastive(z, z, 0).backward()
    torch.testing.assert_close(got["weight"], encoder.weight.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got["bias"], encoder.bias.grad, atol=1e-6, rtol=1e-5)
