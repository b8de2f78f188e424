"""Collectives over the processes of a run (``torchrun``), each a no-op with one process.

The bottom layer: it imports only torch and ``fewlabels.errors``, so algorithms, models and
the loop all take their collectives from here. Two kinds of gather:

- ``all_gather_cat`` passes no gradient: for statistics (running means, memory banks, counts).
- ``all_gather_with_grad`` is differentiable: its backward sums the incoming gradient over the
  ranks and hands each rank its own rows. With the loop averaging parameter gradients over the
  ranks, a contrastive loss whose negatives are gathered with it trains exactly as one process
  with the global batch does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_cat",
    "all_gather_with_grad",
    "all_reduce_mean",
    "any_rank",
    "barrier",
    "collective_device",
    "is_distributed",
    "is_main_process",
    "rank_and_world",
    "sum_over_ranks",
]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes ((0, 1) without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """True when more than one process takes part in the run."""
    return rank_and_world()[1] > 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def collective_device() -> torch.device:
    """Where small tensors for a collective must live: nccl takes CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over all processes (``t`` itself with one process); no gradient."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Rows of ``t`` from every process, concatenated in rank order (equal sizes assumed); no gradient."""
    if is_distributed():
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)
    return t


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: every rank's rows in rank order. Backward: the gradient summed over ranks, this rank's rows of it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = rank_and_world()
        ctx.rows = (rank * len(x), (rank + 1) * len(x))
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank's loss depends on this rank's rows
        start, stop = ctx.rows
        return grad[start:stop]


def all_gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Rows of ``t`` from every process in rank order (equal sizes), differentiable (``t`` itself with one process).

    The gradient reaching this rank's rows is the sum of every rank's loss gradient with respect
    to them; averaged over the ranks with the parameters' gradients, that is the one-process
    gradient of the mean loss over the global batch.
    """
    return _AllGatherWithGrad.apply(t) if is_distributed() else t


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce of the gradient: d(sum_r x_r)/dx_r = 1 on every rank."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over the ranks (``x`` itself with one process)."""
    return _SumOverRanks.apply(x) if is_distributed() else x


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on one (a stop signal must stop all ranks at the same step)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
