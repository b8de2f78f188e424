"""Supervised-only baseline: cross-entropy on the weakly augmented labeled batch."""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, register
from fewlabels.algorithms.components.result import step_result


@register
class Supervised(Algorithm):
    name = "supervised"
    views = {"labeled": ["weak"], "unlabeled": []}

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        logits, _ = model(batch["labeled"]["weak"])
        sup = self.supervised_ce(logits, batch["labeled"]["y"])
        return step_result(sup, sup=sup)
