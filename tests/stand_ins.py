"""Stand-in models for hand-checkable loss tests, shared by the algorithm test files."""

from __future__ import annotations

import torch
from torch import nn


class LogitsAreInputs(nn.Module):
    """A 'model' whose logits are its inputs times a learnable scale (starting at 1) and whose features are its inputs.

    It records the size of every batch it sees, so tests can check how many forward passes an algorithm makes.
    """

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.feature_dim = dim
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(len(x))
        return x * self.scale, x


def context(model: nn.Module | None = None, num_classes: int = 2, num_unlabeled: int = 0, total_steps: int = 10, *,
            labeled_y: torch.Tensor | None = None, label_noise: float = 0.0, ema_decay: float = 0.999):
    """A SetupContext from the facts the old positional ``setup(model, num_classes, num_unlabeled, total_steps)`` took.

    ``model`` and ``labeled_y`` may be None for algorithms that do not read them (hand-checked loss tests).
    """
    from fewlabels.algorithms import SetupContext

    num_labeled = 0 if labeled_y is None else len(labeled_y)
    return SetupContext(model=model, num_classes=num_classes, num_labeled=num_labeled, num_unlabeled=num_unlabeled,
                        total_steps=total_steps, labeled_y=labeled_y, label_noise=label_noise, ema_decay=ema_decay)
