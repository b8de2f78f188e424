"""MoCo v3 ("An Empirical Study of Training Self-Supervised Vision Transformers", Chen, Xie and He).

    q = h(g(f(v))) (online, with a predictor), k = g'(f'(v')) (momentum encoder, no gradient)
    loss = ctr(q1, k2) + ctr(q2, k1), ctr(q, k) = 2 tau * InfoNCE(q, k; tau), negatives the
    other keys of the global batch

Paper defaults (ResNet-50): tau = 1.0, momentum 0.99 -> 1 on a cosine schedule, 3-layer
4096-wide projector, 2-layer predictor, 256-d outputs; tau = 0.2 for ViTs. Here: tau = 0.2,
2-layer 512-wide heads with 128-d outputs (CPU budget). Keys are gathered without gradient
(they come from the momentum encoder); each process's queries are its own share.
"""

from __future__ import annotations

import torch

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.options import POSITIVE, Option
from fewlabels.algorithms.components.pretraining import MomentumTarget
from fewlabels.collectives import all_gather_cat, rank_and_world
from fewlabels.losses.ssl import info_nce


@register
class MoCoV3(MomentumTarget):
    name = "mocov3"
    options = {
        **MomentumTarget.options,
        "temperature": Option(POSITIVE, "temperature of InfoNCE"),
    }

    def __init__(self, temperature: float = 0.2, proj_hidden: int = 512, proj_dim: int = 128, probe_lr: float = 0.1,
                 pred_hidden: int = 512, momentum: float = 0.99, view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, pred_hidden, momentum, view)
        self.temperature = temperature

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        q1, q2 = self.predictor(self.projector(f1)), self.predictor(self.projector(f2))
        k1, k2 = (all_gather_cat(k) for k in self.target_embeddings(batch))
        offset = rank_and_world()[0] * len(q1)  # this process's queries' keys within the global batch
        loss = (info_nce(q1, k2, self.temperature, offset) + info_nce(q2, k1, self.temperature, offset))
        return {"loss": loss, "target_momentum": torch.tensor(self.current_momentum())}
