"""The arithmetic a run's forward pass uses: fp32, or bf16 autocast where the hardware runs it faster.

Only the forward pass (the algorithm's ``losses``) runs under autocast; the losses upcast to fp32
(``losses.at_least_fp32``), and the weights, their gradients, the optimizer state, the EMA and the
checkpoint stay fp32, so a bf16 run's files are those of any other run. Evaluation and prediction
run in fp32: the reported figures do not depend on the training precision's rounding.

``auto`` never assumes: it takes bf16 only where the device has native bf16 units (a GPU that says
so; a CPU with AMX or AVX512_BF16) *and* a short measurement of this run's model shows a clear gain
(``AUTO_MIN_SPEEDUP``). The measurement works on a copy of the model with its own random numbers,
so the run's weights and random streams are those of an fp32 run. The resolved choice replaces
``auto`` in the config before the run folder is written: config.yaml, results.json and a resume
all see ``fp32`` or ``bf16``, and a resume never re-decides.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "auto")
# bench/precision.py on a 2-core AMD EPYC (AVX512_BF16, no AMX), loaded, batch 960 of 28x28: channels-last + bf16 ran
# a step at 1.97x channels-last fp32 for cnn and 2.01x for cnn-wide (2.58x and 3.15x eager fp32); on a Xeon with AMX
# the issue measured 1.9x. A gain under 1.2x is within the noise of a shared machine and not worth the rounding.
AUTO_MIN_SPEEDUP = 1.2


def cpu_bf16_flags() -> list[str]:
    """The CPU's native bf16 features (``amx_bf16``, ``avx512_bf16``) from /proc/cpuinfo; empty where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic units (not an emulation that converts every element)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and bool(cpu_bf16_flags())


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training step's forward pass runs in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class PrecisionChoice:
    precision: str  # fp32 or bf16: what the run uses
    reason: str  # why, for the run's first lines and results.json
    speedup: float | None = None  # bf16 step time / fp32 step time as measured by auto, where it measured

    def record(self) -> dict:
        return {"precision": self.precision, "precision_reason": self.reason, "precision_measured_speedup": self.speedup}


def measure_speedup(model: nn.Module, sample: torch.Tensor, device: torch.device, channels_last: bool,
                    steps: int = 3) -> float:
    """fp32 step time / bf16 step time of forward + backward on a copy of ``model`` with ``sample`` (a batch).

    Each side's best of ``steps`` after one warm-up, interleaved so a load that comes and goes hits both.
    The run's model and random streams are untouched.
    """
    probe = copy.deepcopy(model).train()
    x = sample.to(device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i in range(steps + 1):
            for name in best:
                t0 = time.perf_counter()
                with autocast(name, device):
                    logits, _ = probe(x)
                logits.float().logsumexp(1).mean().backward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:
                    best[name] = min(best[name], time.perf_counter() - t0)
    return best["fp32"] / best["bf16"]


def choose(precision: str, device: torch.device, model: nn.Module, sample: torch.Tensor | None,
           channels_last: bool) -> PrecisionChoice:
    """Resolve ``--precision``: fp32 and bf16 as asked; auto by native bf16 units and a measured gain."""
    if precision in ("fp32", "bf16"):
        return PrecisionChoice(precision, "asked for")
    if sample is None:
        return PrecisionChoice("fp32", "auto: feature vectors (no convolutions to speed up)")
    if not native_bf16(device):
        return PrecisionChoice("fp32", f"auto: {device.type} has no native bf16 units")
    speedup = measure_speedup(model, sample, device, channels_last)
    if speedup >= AUTO_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"auto: bf16 measured {speedup:.2f}x fp32 here", round(speedup, 3))
    return PrecisionChoice("fp32", f"auto: bf16 measured only {speedup:.2f}x fp32 here (needs {AUTO_MIN_SPEEDUP}x)",
                           round(speedup, 3))


def resolve_for(trainer) -> PrecisionChoice:
    """The Trainer's hook: resolve ``cfg.precision`` on a batch of the run's own inputs, write the choice back into the
    config (config.yaml and a resume see fp32 or bf16, never auto) and name it in the run's first lines."""
    cfg = trainer.cfg
    size = cfg.batch_size * (1 + (cfg.uratio if trainer.algorithm.uses_unlabeled else 0))
    sample = trainer.train_x[:size] if trainer.train_x.dim() == 4 else None  # images; feature vectors stay fp32
    choice = choose(cfg.precision, trainer.device, trainer.model, sample, trainer.channels_last)
    cfg.precision = choice.precision
    trainer.p.summary += f"\nprecision: {choice.precision} ({choice.reason})"
    return choice


__all__ = ["AUTO_MIN_SPEEDUP", "PRECISIONS", "PrecisionChoice", "autocast", "choose", "cpu_bf16_flags", "measure_speedup",
           "native_bf16", "resolve_for"]
