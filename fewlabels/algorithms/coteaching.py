"""Co-teaching ("Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels",
Han, Yao, Yu, Niu, Xu, Hu, Tsang and Sugiyama, NeurIPS 2018), on the labeled set.

Two networks f (the loop's model) and g (its peer) see the same labeled batch. Each keeps
the R(t) fraction of the batch on which its own loss is smallest (likely clean labels) and
hands that choice to the other, which learns from it:

    R(t) = 1 - forget_rate * min(1, t / T_k)
    loss = mean_{b in keep_g} H(y_b, f(x_b))  +  mean_{b in keep_f} H(y_b, g(x_b))
    keep_f = the B - round((1 - R(t)) B) samples (at least one) of smallest H(y, f(x)); keep_g likewise for g

The two terms touch disjoint parameters, so one backward pass updates both networks.

Paper defaults: forget_rate = the noise rate (assumed known), T_k = 10 of 200 epochs
(``rampup`` = 0.05 of the run), a linear ramp (exponent c = 1), Adam. Choices here:
- ``forget_rate=None`` (the default) takes the run's configured ``label_noise`` when it is
  above 0, else 0.2; give a number to override. ``hparams()`` (the run record's
  ``algorithm_options``) reports the rate used.
- g is built in ``setup`` as a copy of the model whose every parameter tensor has its
  entries shuffled: the same architecture and the same initial distribution (whatever
  init scheme the model uses), a different draw. It is a submodule: the loop's optimizer
  trains it (the model's SGD recipe and schedule, not the paper's Adam), and it is saved
  in ``state_dict``. The loop evaluates and averages (EMA) f only.
- Only labeled data is used: this is a noisy-label method, not a semi-supervised one.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.options import FRACTION, MOMENTUM, Option, or_empty
from fewlabels.algorithms.components.ramps import linear_rampup, ramp_steps
from fewlabels.algorithms.components.result import step_result

DEFAULT_FORGET_RATE = 0.2  # when the noise rate is not known


def small_loss_indices(losses: torch.Tensor, keep: int) -> torch.Tensor:
    """Positions of the ``keep`` smallest losses (ties: the earlier sample), in ascending loss order."""
    return torch.sort(losses.detach(), stable=True).indices[:keep]


@torch.no_grad()
def shuffled_copy(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """A copy of ``model`` with each parameter's entries randomly permuted: a fresh draw from the same init."""
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        if p.numel() > 1:
            perm = torch.randperm(p.numel(), generator=generator).to(p.device)
            p.copy_(p.flatten()[perm].view_as(p))
    return twin


@register
class CoTeaching(Algorithm):
    name = "coteaching"
    views = {"labeled": ["weak"], "unlabeled": []}
    options = {
        "forget_rate": Option(or_empty(MOMENTUM, "the noise rate"), "largest share of each batch dropped as likely noisy"),
        "rampup": Option(FRACTION, "part of the run over which the forget rate ramps up"),
    }

    def __init__(self, forget_rate: float | None = None, rampup: float = 0.05) -> None:
        super().__init__()
        self.forget_rate = forget_rate
        self.rampup = rampup
        self.max_forget: float | None = None if forget_rate is None else float(forget_rate)  # None: resolved in setup
        self.rampup_steps = 0
        self.peer: nn.Module | None = None  # g, created in setup

    def setup(self, ctx: SetupContext) -> None:
        if self.forget_rate is None:
            self.max_forget = float(ctx.label_noise) if ctx.label_noise else DEFAULT_FORGET_RATE
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)
        self.peer = shuffled_copy(ctx.model)  # the global RNG, seeded by the loop: the same peer every run

    def hparams(self) -> dict[str, Any]:
        """The constructor arguments, forget_rate as used: a None given is the noise rate (or 0.2) once setup has run."""
        return {**super().hparams(), "forget_rate": self.max_forget}

    def forget(self, step: int) -> float:
        """forget_rate * min(1, t / T_k): the share of each batch a network drops."""
        return self.max_forget * linear_rampup(step, self.rampup_steps)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x, y = batch["labeled"]["weak"], batch["labeled"]["y"]
        self.peer.train(model.training)
        logits_f, _ = model(x)
        logits_g, _ = self.peer(x)
        loss_f = self.supervised_ce(logits_f, y, reduction="none")
        loss_g = self.supervised_ce(logits_g, y, reduction="none")
        rate = self.forget(step)
        keep = max(1, len(y) - int(round(rate * len(y))))
        keep_f, keep_g = small_loss_indices(loss_f, keep), small_loss_indices(loss_g, keep)
        sup = loss_f[keep_g].mean()  # f learns from the samples g trusts
        peer = loss_g[keep_f].mean()  # and g from those f trusts
        agree = torch.isin(keep_f, keep_g).float().mean()
        return step_result(sup + peer, sup=sup, peer=peer, forget_rate=torch.tensor(rate), keep_agreement=agree)
