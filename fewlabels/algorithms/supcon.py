"""SupCon ("Supervised Contrastive Learning", Khosla et al.), for a few labels and many unlabeled samples.

    L = mean over anchors a of  -1/|P(a)| sum_{p in P(a)} log softmax_a(z_a . z_p / tau)

P(a) holds the other view of a's own sample and, when a is labeled, every view of the labeled
samples of a's class; unlabeled anchors have their instance positive only, as in SimCLR. So
the few labels shape the representation and the unlabeled pool keeps it spread. Paper
defaults: tau = 0.1, a 2-layer 128-d projection head, batch 6144 on ImageNet. Here tau = 0.1
and the project's strong views (or ``view=crop``); the labeled batch contributes two views of its own.
"""

from __future__ import annotations

import torch

from fewlabels.algorithms.components.base import Batch, register
from fewlabels.algorithms.components.options import POSITIVE, Option
from fewlabels.algorithms.components.pretraining import Pretraining, gather
from fewlabels.collectives import all_gather_cat
from fewlabels.losses.ssl import supcon


@register
class SupCon(Pretraining):
    name = "supcon"
    options = {
        **Pretraining.options,
        "temperature": Option(POSITIVE, "temperature of the supervised contrastive loss"),
    }
    labeled_pair = True  # the instance's views: weak + the pair for labeled samples, the pair for unlabeled ones

    def __init__(self, temperature: float = 0.1, proj_hidden: int = 512, proj_dim: int = 128, probe_lr: float = 0.1,
                 view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, view)
        self.temperature = temperature

    def losses(self, model, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        lab, unl = batch["labeled"], batch["unlabeled"]
        both = {name: torch.cat([lab[name], unl[name]]) for name in self.pair}
        y = torch.cat([lab["y"], torch.full((len(unl[self.pair[0]]),), -1, dtype=lab["y"].dtype, device=lab["y"].device)])
        return super().losses(model, {**batch, "unlabeled": both, "supcon_y": y}, step)

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        z1, z2 = gather(self.projector(f1)), gather(self.projector(f2))
        return {"loss": supcon(z1, z2, all_gather_cat(batch["supcon_y"]), self.temperature)}
