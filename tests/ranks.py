"""Run a function in several gloo processes on CPU (shared by the several-process tests)."""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist

WORLD = 2


def _worker(rank: int, world: int, init_file: str, out: str, fn, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    code = 1
    try:
        result = fn(rank, world, *args)
        if rank == 0:
            torch.save(result, out)
        dist.barrier()  # no rank leaves while another still talks to it
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        # leave without tearing gloo down: its teardown in a spawned child sometimes aborts the process
        # ("terminate called without an active exception") after all the work is done
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def on_ranks(fn, *args, world: int = WORLD):
    """Run ``fn(rank, world, *args)`` in ``world`` gloo processes and return rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.pt")
        torch.multiprocessing.spawn(_worker, args=(world, os.path.join(tmp, "init"), out, fn, args), nprocs=world, join=True)
        return torch.load(out, weights_only=False)
