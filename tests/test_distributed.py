"""Several processes on CPU (gloo): global batch norm, gradient averaging, and W ranks = one process with W x the batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ranks import WORLD, on_ranks
from torch import nn

from fewlabels.train import TrainConfig, prepare
from fewlabels.train.distributed import GlobalBatchNorm, any_rank, average_gradients, global_batchnorm, shard
from fewlabels.train.loop import Trainer


def _batchnorm_ranks(rank: int, world: int, x: torch.Tensor, w: torch.Tensor) -> dict:
    bn = GlobalBatchNorm(x.shape[1], momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, x.shape[1]))
        bn.bias.copy_(torch.linspace(-1, 1, x.shape[1]))
    mine = shard(x, rank, world).clone().requires_grad_(True)
    y = bn(mine)
    (y * shard(w, rank, world)).sum().backward()
    grads = {"weight": bn.weight.grad.clone(), "bias": bn.bias.grad.clone()}
    for g in grads.values():
        dist.all_reduce(g)  # the loss is a sum over ranks, so its parameter gradient is the sum of theirs
    xs = [torch.empty_like(mine) for _ in range(world)]
    ys = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(xs, mine.grad)
    dist.all_gather(ys, y.detach())
    return {"y": ys, "x_grad": xs, **grads, "running_mean": bn.running_mean, "running_var": bn.running_var}


@pytest.mark.kernels
@pytest.mark.parametrize("shape", [(12, 3, 5, 4), (10, 6)], ids=["conv", "features"])
def test_global_batchnorm_equals_batchnorm_on_the_whole_batch(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g) * 3 + 1
    w = torch.randn(*shape, generator=g)
    got = on_ranks(_batchnorm_ranks, x, w)

    ref = nn.BatchNorm2d(shape[1]) if len(shape) == 4 else nn.BatchNorm1d(shape[1])
    with torch.no_grad():
        ref.weight.copy_(torch.linspace(0.5, 1.5, shape[1]))
        ref.bias.copy_(torch.linspace(-1, 1, shape[1]))
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * w).sum().backward()
    for r in range(WORLD):
        torch.testing.assert_close(got["y"][r], shard(y.detach(), r, WORLD), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got["x_grad"][r], shard(xr.grad, r, WORLD), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["weight"], ref.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got["bias"], ref.bias.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got["running_mean"], ref.running_mean)
    torch.testing.assert_close(got["running_var"], ref.running_var)


def test_global_batchnorm_converts_the_heads_an_algorithm_builds_in_setup():
    from stand_ins import context

    from fewlabels import algorithms, models

    torch.manual_seed(0)
    algorithm = algorithms.get("shrinkmatch")
    algorithm.setup(context(models.get("mlp", (6,), 3), 3, 8, 10))  # its head has BatchNorm
    keys = list(algorithm.state_dict())
    params = [p.detach().clone() for p in algorithm.parameters()]
    assert global_batchnorm(algorithm) is algorithm
    norms = [m for m in algorithm.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 2 and all(isinstance(m, GlobalBatchNorm) for m in norms)
    assert list(algorithm.state_dict()) == keys
    after = list(algorithm.parameters())  # new tensors, same values: convert before building the optimizer
    assert len(after) == len(params) and all(torch.equal(a, b) for a, b in zip(after, params))


def test_global_batchnorm_is_plain_batchnorm_in_one_process_and_keeps_keys():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    model[1].running_mean.fill_(0.25)
    keys = list(model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = global_batchnorm(model)
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[4], GlobalBatchNorm)
    assert list(converted.state_dict()) == keys
    for k, v in converted.state_dict().items():
        assert torch.equal(v, before[k])
    x = torch.randn(6, 1, 3, 3)
    plain = nn.BatchNorm2d(4)
    plain.load_state_dict({k[2:]: v for k, v in before.items() if k.startswith("1.")})
    torch.testing.assert_close(converted[1](converted[0](x)), plain(converted[0](x)))


def _average_ranks(rank: int, world: int) -> list[torch.Tensor | None]:
    a = nn.Parameter(torch.zeros(3))
    b = nn.Parameter(torch.zeros(2, 2))
    unused = nn.Parameter(torch.zeros(5))  # no rank has a gradient for it
    a.grad = torch.full((3,), float(rank + 1))
    if rank == 0:
        b.grad = torch.ones(2, 2) * 4  # rank 1 has no gradient for b: it counts as zero
    average_gradients([a, unused, b], bucket_bytes=8)  # tiny buckets: several all-reduces
    return [a.grad, b.grad, unused.grad]


def test_average_gradients_means_over_ranks_and_fills_missing_with_zero():
    a, b, unused = on_ranks(_average_ranks)
    torch.testing.assert_close(a, torch.full((3,), 1.5))
    torch.testing.assert_close(b, torch.full((2, 2), 2.0))
    assert unused is None  # as in one process: the optimizer must not decay or move it


def _digits_features():
    """digits as 64 features (MLP, feature-space views): no max-pooling, so nothing amplifies rounding."""
    from sklearn.datasets import load_digits

    from fewlabels.data.arrays import from_arrays
    from fewlabels.data.dataset import DataSource

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return DataSource(train=from_arrays(x[:1400], y[:1400]), test=from_arrays(x[1400:], y[1400:]), origin="sklearn digits")


def _train_steps(rank: int, world: int, algorithm: str, batch_size: int, steps: int, settings: dict | None = None) -> dict:
    settings = dict(settings or {})
    features = settings.pop("features", False)
    if not features:
        return _train_steps_in(rank, world, algorithm, batch_size, steps, settings, None)
    # Features train in float64: the comparison is of the arithmetic, so the rounding of whichever SIMD kernels
    # this CPU has (AVX2, AVX-512, AMX) must stay far below the tolerance.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _train_steps_in(rank, world, algorithm, batch_size, steps, settings, _digits_features())
    finally:
        torch.set_default_dtype(default)


def _train_steps_in(rank: int, world: int, algorithm: str, batch_size: int, steps: int, settings: dict, source) -> dict:
    cfg = TrainConfig(dataset="digits", labels_per_class=5, algorithm=algorithm, iterations=max(steps, 1), batch_size=batch_size,
                      uratio=3, eval_every=10_000, checkpoint_every=10_000, seed=3, out=None,
                      model="mlp" if source is not None else "cnn", **settings)
    trainer = Trainer(prepare(cfg, source), progress=False)
    for _ in range(steps):
        trainer.train_step({})
    owned = {k: v.clone() for k, v in trainer.algorithm.state_dict().items()
             if isinstance(v, torch.Tensor)}  # heads, peers and running state the algorithm holds
    return {"model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "ema": {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}, "algorithm": owned}


# Features + MLP: the runs must agree to float rounding. Images + CNN: the same, but max-pooling over flat regions
# (background, padding fill, Cutout) turns rounding differences in the convolution (summed in a batch-size-dependent
# order) into different tie breaks, which grow step by step; contiguous layout and a few steps keep that small.
# A threshold of 0.01 makes every unlabeled sample count from the first step.
ALL_IN = {"options": {"threshold": 0.01}}
CASES = {
    "supervised": ("supervised", {"features": True}),
    "fixmatch": ("fixmatch", {"features": True, **ALL_IN}),
    "flexmatch": ("flexmatch", {"features": True}),
    "shrinkmatch": ("shrinkmatch", {"features": True}),  # a head with BatchNorm, built in setup
    "simmatch": ("simmatch", {"features": True}),  # a head without gradient at the first step
    "images-fixmatch": ("fixmatch", {"channels_last": False}),
    "images-sla": ("sla", {"channels_last": False}),  # a joint head the algorithm owns
}


@pytest.mark.kernels
@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_like_one_process_with_twice_the_batch(case):
    algorithm, settings = CASES[case]
    torch.set_num_threads(1)
    steps = 4
    one = _train_steps(0, 1, algorithm, 2 * 8, steps, settings)
    two = on_ranks(_train_steps, algorithm, 8, steps, settings)
    assert_trained_alike(one, two, algorithm, settings)


def assert_trained_alike(one: dict, two: dict, algorithm: str, settings: dict) -> None:
    """Model, EMA and the algorithm's state of the two-process run equal those of one process with twice the batch."""
    atol, rtol = (1e-9, 1e-7) if settings.get("features") else (1e-4, 1e-3)  # features: float64; images: see above CASES
    for part in ("model", "ema", "algorithm"):
        assert one[part].keys() == two[part].keys(), part
        for k, v in one[part].items():
            if v.is_floating_point():
                torch.testing.assert_close(two[part][k], v, atol=atol, rtol=rtol, msg=f"{part} {k}")
            else:
                assert torch.equal(two[part][k], v), f"{part} {k}"
    start = _train_steps(0, 1, algorithm, 2 * 8, 0, settings)["model"]
    moved = max(float((v - start[k]).abs().max()) for k, v in one["model"].items() if v.is_floating_point())
    assert moved > 1e-3  # the steps did train


# Self-supervised methods: every rank gathers the projections with gradient and computes the global batch's loss
# (negatives, cross-correlation, variance and covariance over the global batch); MoCo v3 gathers only its keys and
# scores its own queries, SupCon gathers the labels too, BYOL gathers nothing (its heads' BatchNorm is global). The
# algorithm's state holds the projector, predictor and target networks. One spawn trains all six (spawning dominates).
SSL = ["simclr", "barlowtwins", "vicreg", "mocov3", "supcon", "byol"]
SSL_SETTINGS = {"features": True}
SSL_STEPS = 3


def _train_each(rank: int, world: int, algorithms: list[str], batch_size: int, steps: int, settings: dict) -> dict:
    return {a: _train_steps(rank, world, a, batch_size, steps, settings) for a in algorithms}


@pytest.fixture(scope="module")
def ssl_on_two_processes() -> dict:
    torch.set_num_threads(1)
    return on_ranks(_train_each, SSL, 8, SSL_STEPS, SSL_SETTINGS)


@pytest.mark.kernels
@pytest.mark.parametrize("algorithm", SSL)
def test_self_supervised_methods_use_the_global_batch_on_two_processes(algorithm, ssl_on_two_processes):
    torch.set_num_threads(1)
    one = _train_steps(0, 1, algorithm, 2 * 8, SSL_STEPS, SSL_SETTINGS)
    assert_trained_alike(one, ssl_on_two_processes[algorithm], algorithm, SSL_SETTINGS)


def _any_rank(rank: int, world: int) -> list[bool]:
    return [any_rank(rank == 1), any_rank(False)]


def test_any_rank_is_true_everywhere_when_true_on_one_rank():
    assert on_ranks(_any_rank) == [True, False]


def _batch_on_ranks(rank: int, world: int) -> dict:
    cfg = TrainConfig(dataset="digits", labels_per_class=5, algorithm="fixmatch", iterations=2, batch_size=4, uratio=2,
                      seed=5, out=None, channels_last=False)
    trainer = Trainer(prepare(cfg), progress=False)
    batch, _ = trainer.make_batch()
    after = torch.rand(3, generator=batch["generator"])  # what an algorithm would draw next (mixup, rotations)
    shares = {k: batch["unlabeled"][k] for k in ("weak", "strong", "index")} | {"y": batch["labeled"]["y"]}
    gathered = {}
    for k, v in [*shares.items(), ("after", after)]:
        parts = [torch.empty_like(v) for _ in range(world)]
        dist.all_gather(parts, v.contiguous())
        gathered[k] = parts
    return gathered


def test_ranks_share_one_global_batch_but_draw_their_own_randomness_afterwards():
    two = on_ranks(_batch_on_ranks)
    cfg = TrainConfig(dataset="digits", labels_per_class=5, algorithm="fixmatch", iterations=2, batch_size=8, uratio=2,
                      seed=5, out=None, channels_last=False)
    one, _ = Trainer(prepare(cfg), progress=False).make_batch()
    for k in ("weak", "strong", "index"):
        for r in range(WORLD):
            assert torch.equal(two[k][r], shard(one["unlabeled"][k], r, WORLD)), k
    for r in range(WORLD):
        assert torch.equal(two["y"][r], shard(one["labeled"]["y"], r, WORLD))
    assert not torch.equal(two["after"][0], two["after"][1])  # mixup & co. are not the same draws on every rank


@pytest.mark.slow
def test_torchrun_cli_trains_and_only_rank_0_writes(tmp_path: Path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "fewlabels", "train", "--dataset", "digits",
           "--labels-per-class", "5", "--iterations", "12", "--eval-every", "6", "--batch-size", "8", "--quiet", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("run written to") == 1  # rank 0 alone reports
    assert (out / "results.json").is_file() and (out / "last.pt").is_file()
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 evaluations, once
