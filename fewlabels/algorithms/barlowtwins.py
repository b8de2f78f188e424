"""Barlow Twins ("Barlow Twins: Self-Supervised Learning via Redundancy Reduction", Zbontar, Jing, Misra, LeCun and Deny).

    C = cross-correlation of the batch-standardized embeddings of the two views (d x d)
    loss = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2

Paper defaults: lambda = 5.1e-3, a 3-layer 8192-wide projector with batch norm, batch 2048.
Here: a 3-layer 512-wide projector (CPU budget), lambda = 5.1e-3; C over the global batch; the
loss scaled by ``scale_loss`` = 0.1 (solo-learn's CIFAR setting): with plain SGD instead of LARS
the unscaled sum over 512 dimensions trains badly. Checked on a validation split of digits (200
held-out pool images, kNN with the 4-per-class labeled set as memory, 150 steps): 46.5% at 0.1,
38.5% unscaled.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.options import NON_NEGATIVE, POSITIVE, Option
from fewlabels.algorithms.components.pretraining import Pretraining, gather
from fewlabels.losses.ssl import barlow_twins
from fewlabels.models.heads import projection_mlp


@register
class BarlowTwins(Pretraining):
    name = "barlowtwins"
    options = {
        **Pretraining.options,
        "lambda_offdiag": Option(NON_NEGATIVE, "weight of the off-diagonal cross-correlation"),
        "scale_loss": Option(POSITIVE, "factor on the whole loss"),
    }

    def __init__(self, lambda_offdiag: float = 5.1e-3, scale_loss: float = 0.1, proj_hidden: int = 512, proj_dim: int = 512,
                 probe_lr: float = 0.1,
                 view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, view)
        self.lambda_offdiag, self.scale_loss = lambda_offdiag, scale_loss

    def make_projector(self, feature_dim: int) -> nn.Module:
        return projection_mlp(feature_dim, self.proj_hidden, self.proj_dim, num_layers=3, batchnorm=True)

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        loss = barlow_twins(gather(self.projector(f1)), gather(self.projector(f2)), self.lambda_offdiag)
        return {"loss": self.scale_loss * loss}
