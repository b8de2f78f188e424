"""BYOL ("Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", Grill et al.).

    online: p = q(g(f(v))), target: z' = g'(f'(v')) (an EMA of the online encoder and projector)
    loss = (2 - 2 cos(p1, z2')) + (2 - 2 cos(p2, z1')), no gradient through the target

The target's momentum rises from tau_base to 1 on a cosine schedule over the run. Paper
defaults: tau_base = 0.996, 4096-wide projector and predictor with 256-d outputs, LARS at
batch 4096. Here: tau_base = 0.99 (solo-learn's CIFAR setting; short runs need a faster
target), 512-wide heads with 128-d outputs.
"""

from __future__ import annotations

import torch

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.pretraining import MomentumTarget
from fewlabels.losses.ssl import byol_regression


@register
class BYOL(MomentumTarget):
    name = "byol"

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        p1, p2 = self.predictor(self.projector(f1)), self.predictor(self.projector(f2))
        t1, t2 = self.target_embeddings(batch)
        loss = byol_regression(p1, t2) + byol_regression(p2, t1)
        return {"loss": loss, "target_momentum": torch.tensor(self.current_momentum())}
