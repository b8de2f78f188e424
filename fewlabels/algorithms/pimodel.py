"""Pi-model ("Temporal Ensembling for Semi-Supervised Learning", Laine and Aila).

    loss = H(y, p(x_weak))  +  w(t) * mean_b[ 1/C * || p(u_weak1_b) - p(u_weak2_b) ||^2 ]

Two stochastic (weak) augmentations of each unlabeled sample should get the same
softmax output. w(t) = lambda_u * exp(-5 (1 - t/T_r)^2) is the paper's Gaussian ramp-up.

Paper: w_max = 100 * M/N (M labels out of N samples), ramp over the first 80 of 300 epochs
(27%), both branches carry gradients. Here: lambda_u = 10 (USB's benchmark value, which is
the comparison people make), the ramp spans ``rampup`` = 40% of the run (short CPU runs
start from a few labels, so the noisy early targets get a longer grace period), and the
second branch is a detached target as in later implementations (Mean Teacher with
decay 0 is this model), which makes the consistency a pull of one view toward the other.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.options import LAMBDA_U, RAMPUP
from fewlabels.algorithms.components.ramps import ramp_steps, sigmoid_rampup
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import softmax_mse


@register
class PiModel(Algorithm):
    name = "pimodel"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "weak#2"]}  # two independent weak draws
    options = {
        "lambda_u": LAMBDA_U,
        "rampup": RAMPUP,
    }

    def __init__(self, lambda_u: float = 10.0, rampup: float = 0.4) -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.rampup = rampup
        self.rampup_steps = 0  # set by setup(); 0 means full weight at once

    def setup(self, ctx: SetupContext) -> None:
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u1 = batch["unlabeled"]["weak"]
        u2 = batch["unlabeled"]["weak#2"]
        (logits_l, logits_1, logits_2), _ = joint_forward(model, x_l, u1, u2)
        target = torch.softmax(logits_2.detach().float(), dim=-1)
        sup = self.supervised_ce(logits_l, y_l)
        unsup = softmax_mse(logits_1.float(), target).mean()
        weight = self.lambda_u * sigmoid_rampup(step, self.rampup_steps)
        return step_result(sup + weight * unsup, sup=sup, unsup=unsup, unsup_weight=torch.tensor(weight),
                           pseudo_labels=target.argmax(dim=-1),  # the targets' top class, for the pseudo-label accuracy
                           mask=torch.ones(len(u1), dtype=torch.bool, device=logits_l.device))
