"""VICReg ("VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning", Bardes, Ponce and LeCun).

    loss = lambda * invariance(z1, z2) + mu * variance(z1, z2) + nu * covariance(z1, z2)

invariance: mean squared distance between the views' embeddings; variance: a hinge keeping
each dimension's std above 1; covariance: squared off-diagonal covariances, decorrelating the
dimensions. Paper defaults: lambda = mu = 25, nu = 1, a 3-layer 8192-wide expander. Here: a
3-layer 512-wide expander (CPU budget); the variance and covariance of the global batch.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.options import NON_NEGATIVE, Option
from fewlabels.algorithms.components.pretraining import Pretraining, gather
from fewlabels.losses.ssl import vicreg_terms
from fewlabels.models.heads import projection_mlp


@register
class VICReg(Pretraining):
    name = "vicreg"
    options = {
        **Pretraining.options,
        "sim_weight": Option(NON_NEGATIVE, "weight of the invariance term"),
        "var_weight": Option(NON_NEGATIVE, "weight of the variance hinge"),
        "cov_weight": Option(NON_NEGATIVE, "weight of the covariance term"),
    }

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0, proj_hidden: int = 512,
                 proj_dim: int = 512, probe_lr: float = 0.1,
                 view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, view)
        self.sim_weight, self.var_weight, self.cov_weight = sim_weight, var_weight, cov_weight

    def make_projector(self, feature_dim: int) -> nn.Module:
        return projection_mlp(feature_dim, self.proj_hidden, self.proj_dim, num_layers=3, batchnorm=True)

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        t = vicreg_terms(gather(self.projector(f1)), gather(self.projector(f2)))
        loss = self.sim_weight * t["invariance"] + self.var_weight * t["variance"] + self.cov_weight * t["covariance"]
        return {"loss": loss, **t}
