"""Several processes (``torchrun``): process group, gradient averaging, batch statistics over all ranks.

Every caller works unchanged with one process. With W processes each rank takes its
share of one global batch, batch normalisation sees the whole global batch, and the
gradients are averaged after ``backward``, so a W-process run follows the 1-process
run with a W times larger batch up to float rounding.

Gradients are averaged by an explicit all-reduce rather than by wrapping the model in
``DistributedDataParallel``: algorithms call the model's parts (``features``, heads, a
peer network, parameters of their own) in ways DDP's forward hook does not see, and
an all-reduce after ``backward`` is the same synchronous SGD for all of them.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fewlabels.collectives import (  # noqa: F401  (re-exported for the loop and its tests)
    all_gather_cat,
    all_gather_with_grad,
    all_reduce_mean,
    any_rank,
    barrier,
    collective_device,
    is_distributed,
    is_main_process,
    rank_and_world,
    sum_over_ranks,
)
from fewlabels.errors import FewLabelsError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str = "auto") -> torch.device | None:
    """Join the process group torchrun describes in the environment; None when not under torchrun.

    gloo on CPU, nccl on GPU (one device per local rank). Returns the device this rank
    trains on. Calling it again in an initialised process changes nothing.
    """
    if not launched_by_torchrun():
        return None
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        if not torch.cuda.is_available():
            raise FewLabelsError("device 'cuda' was asked for under torchrun but no CUDA GPU is available; use --device cpu.")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        atexit.register(_leave_process_group)
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def _leave_process_group() -> None:
    """Tear the group down before the interpreter does: left to exit, gloo's threads sometimes abort the process
    ("terminate called without an active exception", exit -6) after all the work is done, failing a finished run."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of a global batch: items rank, rank + W, rank + 2W, ... (as IndexStream deals them)."""
    return t if world == 1 else t[rank::world]


def average_gradients(params: Iterable[nn.Parameter], bucket_bytes: int = 16 << 20) -> None:
    """Replace every gradient by its mean over the ranks, in flat buckets (one all-reduce per ~16 MB).

    A parameter that got a gradient on some rank but not on this one counts as a zero gradient
    here; one that got none on any rank keeps ``grad = None``, as in one process (so the
    optimizer applies no weight decay or momentum to it).
    """
    world = rank_and_world()[1]
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=collective_device())
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    params = [p for p, used in zip(params, has_grad.tolist()) if used > 0]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[torch.Tensor] = []
    size = 0
    for i, p in enumerate(params):
        bucket.append(p.grad)
        size += p.grad.numel() * p.grad.element_size()
        last = i == len(params) - 1
        if size >= bucket_bytes or last or params[i + 1].grad.dtype != p.grad.dtype or params[i + 1].grad.device != p.grad.device:
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat)
            flat /= world
            offset = 0
            for g in bucket:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
            bucket, size = [], 0


class GlobalBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics are those of the global batch across all ranks.

    ``torch.nn.SyncBatchNorm`` does the same on GPUs only; this one works with gloo on CPU
    too. The all-reduces are differentiable, so gradients flow through the shared
    statistics exactly as in one process. State-dict keys are BatchNorm's, so checkpoints
    load into the plain model. With one process it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-d input, got {input.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        world = rank_and_world()[1]
        if not self.training or world == 1:
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        total = sum_over_ranks(torch.cat([x.sum(dims), count]))  # differentiable sums over every rank
        n = total[c]
        mean = total[:c] / n
        shape = [1, c] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = sum_over_ranks((centred * centred).sum(dims)) / n  # two passes: as accurate as one process's BatchNorm
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * (n / (n - 1).clamp(min=1)), factor)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a GlobalBatchNorm holding the same parameters and buffers."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                              device=module.running_mean.device if module.running_mean is not None else None)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, global_batchnorm(child))
    return module
