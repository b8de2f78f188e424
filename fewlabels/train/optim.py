"""FixMatch's optimizer recipe: SGD with Nesterov momentum, cosine decay, no decay on norms/biases."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn


def make_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool,
                   extra: Iterable[nn.Parameter] = (), groups: Sequence[dict[str, Any]] = ()) -> torch.optim.SGD:
    """``extra``: parameters outside the model that train with it (an algorithm's own heads); ``groups``:
    parameter groups with settings of their own (e.g. a linear probe's lr), whose parameters leave the default groups.
    Each parameter is optimized once, however many of these name it."""
    seen = {id(p) for g in groups for p in g["params"]}
    decay, no_decay = [], []
    for p in [*model.parameters(), *extra]:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.dim() <= 1 else decay).append(p)
    own = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    param_groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}, *own]
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, cycles: float = 7.0 / 16.0) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_k = lr * cos(pi * cycles * k / K): FixMatch's 7/16 keeps the final lr at ~20%."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: max(0.0, math.cos(math.pi * cycles * k / max(1, total_steps)))
    )
