"""Evaluation during training as a list of monitors, each returning named figures.

The loop builds one ``EvalContext`` per evaluation and asks every monitor for its figures;
metrics.csv gets a column for every name any monitor (or the algorithm's losses) ever
reported, so a new diagnostic needs no change to the loop or the writer. An algorithm
adds monitors of its own through ``Algorithm.monitors()`` (a linear probe, kNN, collapse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from fewlabels.evaluate.metrics import accuracy


@dataclass
class EvalContext:
    """The models and data a monitor may read; predictions are cached per (model, set) for this evaluation."""

    model: nn.Module  # the raw student, as trained
    ema_model: nn.Module  # the EMA model: the one a run reports
    step: int
    predict: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # batched (logits, features), eval mode, CPU
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    labeled_x: torch.Tensor | None = None  # the labeled set, labels as training sees them (kNN memory, probes)
    labeled_y: torch.Tensor | None = None
    views: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] | None = None  # the run's augmentations
    _cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def outputs(self, model: nn.Module, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and features of ``model`` on ``which`` ("test", "val" or "labeled"), one pass per pair."""
        key = (id(model), which)
        if key not in self._cache:
            self._cache[key] = self.predict(model, getattr(self, f"{which}_x"))
        return self._cache[key]

    def logits(self, model: nn.Module, which: str) -> torch.Tensor:
        return self.outputs(model, which)[0]

    def features(self, model: nn.Module, which: str) -> torch.Tensor:
        return self.outputs(model, which)[1]


class Monitor(Protocol):
    def __call__(self, ctx: EvalContext) -> dict[str, float]: ...


class TestAccuracy:
    """Test accuracy of the EMA model (the reported one) and of the raw model."""

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.test_x is None:
            return {}
        return {"test_acc": accuracy(ctx.test_y, ctx.logits(ctx.ema_model, "test").argmax(1)),
                "test_acc_raw": accuracy(ctx.test_y, ctx.logits(ctx.model, "test").argmax(1))}


class ValidationAccuracy:
    """Accuracy of the EMA model on the held-out labeled validation split (the one to choose settings on)."""

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.val_x is None or len(ctx.val_x) == 0:
            return {}
        return {"val_acc": accuracy(ctx.val_y, ctx.logits(ctx.ema_model, "val").argmax(1))}


def default_monitors() -> list[Monitor]:
    return [TestAccuracy(), ValidationAccuracy()]


def run_monitors(monitors: list[Monitor], ctx: EvalContext) -> dict[str, Any]:
    """Every monitor's figures in one dict; a name reported twice is a bug, not a silent overwrite."""
    figures: dict[str, Any] = {}
    for monitor in monitors:
        for name, value in monitor(ctx).items():
            if name in figures:
                raise ValueError(f"two monitors report '{name}' ({type(monitor).__name__} is the second)")
            figures[name] = value
    return figures
