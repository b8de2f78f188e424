"""The optimizer of a run: SGD-Nesterov (FixMatch's recipe) or Adam/AdamW, optionally lookahead; cosine decay.

Weight decay never touches one-dimensional parameters (norm weights, biases): they form a group of their own,
whose learning rate ``norm_lr_scale`` can raise (Page's ResNet-9 trains BN biases at a much higher rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from fewlabels.train.config import OPTIMIZERS

LOOKAHEAD_ALPHA = 0.5  # how far the slow weights move toward the fast ones at each sync (Zhang et al. 2019)


def make_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool,
                   extra: Iterable[nn.Parameter] = (), groups: Sequence[dict[str, Any]] = (), optimizer: str = "sgd",
                   lookahead: int = 0, norm_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """``extra``: parameters outside the model that train with it (an algorithm's own heads); ``groups``:
    parameter groups with settings of their own (e.g. a linear probe's lr), whose parameters leave the default groups.
    Each parameter is optimized once, however many of these name it.

    ``optimizer``: sgd (momentum, Nesterov as asked; weight decay as L2 in the gradient), adam (L2 as SGD) or adamw
    (decoupled decay: each step shrinks the weights by lr x weight_decay). ``lookahead``: k > 0 wraps it in
    ``Lookahead``. ``norm_lr_scale``: the no-decay group's (every 1-d parameter's) lr as a multiple of ``lr``.
    """
    seen = {id(p) for g in groups for p in g["params"]}
    decay, no_decay = [], []
    for p in [*model.parameters(), *extra]:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.dim() <= 1 else decay).append(p)
    own = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    norms = {"params": no_decay, "weight_decay": 0.0, **({"lr": lr * norm_lr_scale} if norm_lr_scale != 1.0 else {})}
    param_groups = [{"params": decay, "weight_decay": weight_decay}, norms, *own]
    if optimizer == "sgd":
        base: torch.optim.Optimizer = torch.optim.SGD(param_groups, lr=lr, momentum=momentum,
                                                      nesterov=nesterov and momentum > 0)
    elif optimizer in ("adam", "adamw"):  # groups without a weight decay of their own get none (as SGD's default)
        kind = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        base = kind(param_groups, lr=lr, weight_decay=0.0)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; one of {', '.join(OPTIMIZERS)}")
    return Lookahead(base, lookahead) if lookahead > 0 else base


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al. 2019): every ``k`` steps the slow weights move ``alpha`` of the way to the fast
    weights, and the fast weights restart from them. Our code; the slow weights and the step count are part of
    ``state_dict``, so a resumed run continues bit-identical.

    It wraps ``base`` rather than copying it: ``param_groups`` (what the schedule sets) and ``state`` are the base's.
    ``Optimizer.__init__`` is not called; this class only passes schedulers' ``isinstance`` check.
    """

    def __init__(self, base: torch.optim.Optimizer, k: int, alpha: float = LOOKAHEAD_ALPHA) -> None:  # noqa: D107
        self.base, self.k, self.alpha, self.steps = base, int(k), float(alpha), 0
        self.slow = [[p.detach().clone() for p in g["params"]] for g in base.param_groups]

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base.param_groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = self.base.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group, slow in zip(self.base.param_groups, self.slow, strict=True):
                for p, s in zip(group["params"], slow, strict=True):
                    s.add_(p - s, alpha=self.alpha)
                    p.copy_(s)
        return loss

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.base.state_dict(), "lookahead": {"k": self.k, "alpha": self.alpha, "steps": self.steps,
                                                        "slow": [[s.clone() for s in g] for g in self.slow]}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        state_dict = dict(state_dict)
        own = state_dict.pop("lookahead")
        self.base.load_state_dict(state_dict)
        self.k, self.alpha, self.steps = int(own["k"]), float(own["alpha"]), int(own["steps"])
        with torch.no_grad():
            for mine, saved in zip(self.slow, own["slow"], strict=True):
                for s, v in zip(mine, saved, strict=True):
                    s.copy_(v)

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.base!r})"


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, cycles: float = 7.0 / 16.0) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_k = lr * cos(pi * cycles * k / K): FixMatch's 7/16 keeps the final lr at ~20%."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: max(0.0, math.cos(math.pi * cycles * k / max(1, total_steps)))
    )
