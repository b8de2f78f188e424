"""An exponential moving average of a model's weights, with a warmed-up decay: one class for the loop and algorithms."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA(nn.Module):
    """``ema = d * ema + (1 - d) * model`` after each step, ``d = min(decay, (1 + t) / (10 + t))``.

    ``self.module`` is a frozen deep copy of the model (in eval mode; a user that wants batch
    statistics sets its mode explicitly, as Mean Teacher does). The warm-up matters on short
    CPU budgets: with a flat 0.999 the average is still about a third initial weights after
    1,000 steps. Buffers (BatchNorm statistics) are copied, not averaged. ``updates`` and
    ``decay`` travel in ``state_dict`` through PyTorch's extra-state hook.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def get_extra_state(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        legacy = state_dict.get(prefix + "module")
        if isinstance(legacy, dict):  # written before EMA was a module: {"module": {...}, "updates": t, "decay": d}
            state_dict.pop(prefix + "module")
            for key, value in legacy.items():
                state_dict[prefix + "module." + key] = value
            extra = {"updates": state_dict.pop(prefix + "updates"), "decay": state_dict.pop(prefix + "decay", self.decay)}
            state_dict[prefix + "_extra_state"] = extra
        super()._load_from_state_dict(state_dict, prefix, *args)
