"""SimCLR ("A Simple Framework for Contrastive Learning of Visual Representations", Chen, Kornblith, Norouzi and Hinton).

    z = g(f(x)) for two augmented views of each sample; loss = NT-Xent(z1, z2; tau) over the global batch

Paper defaults: a 2-layer MLP projection head with a 128-d output, tau = 0.5 at small batch
sizes on CIFAR-10 (0.1 with LARS at batch 4096 on ImageNet), random resized crops + colour
distortion + blur as the views. Here: the project's strong views by default (``view=crop`` for
the paper's crops and colour jitter, behind on Fashion-MNIST: BENCHMARKS.md), a 512-wide head
with batch norm, tau = 0.5.
"""

from __future__ import annotations

import torch

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.options import POSITIVE, Option
from fewlabels.algorithms.components.pretraining import Pretraining, gather
from fewlabels.losses.ssl import nt_xent


@register
class SimCLR(Pretraining):
    name = "simclr"
    options = {
        **Pretraining.options,
        "temperature": Option(POSITIVE, "temperature of NT-Xent"),
    }

    def __init__(self, temperature: float = 0.5, proj_hidden: int = 512, proj_dim: int = 128, probe_lr: float = 0.1,
                 view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, view)
        self.temperature = temperature

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        return {"loss": nt_xent(gather(self.projector(f1)), gather(self.projector(f2)), self.temperature)}
