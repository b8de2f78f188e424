"""Pseudo-Label ("Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method
for Deep Neural Networks", Lee).

    loss = H(y, p(x_weak))  +  alpha(t) * mean_b[ 1(max p_b >= tau) * H(argmax p_b, p(u_weak_b)) ]
    with p_b = p(u_weak_b) the model's own prediction, taken as a constant target.

The class the model currently believes in is treated as a true label, which is entropy
minimisation in disguise. Paper: no threshold, alpha(t) = 0 for the first 100 epochs, then
linear to alpha_f = 3 at epoch 600. Here, as in USB: tau = 0.95 (only confident guesses
count, which guards against confirming early mistakes), lambda_u = 1, and a linear ramp
over the first ``rampup`` = 40% of the run.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import (
    Algorithm,
    Batch,
    SetupContext,
    register,
)
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.options import LAMBDA_U, RAMPUP, THRESHOLD
from fewlabels.algorithms.components.ramps import linear_rampup, ramp_steps
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import confident_pseudo_labels, cross_entropy, masked_mean


@register
class PseudoLabel(Algorithm):
    name = "pseudolabel"
    views = {"labeled": ["weak"], "unlabeled": ["weak"]}
    options = {
        "threshold": THRESHOLD,
        "lambda_u": LAMBDA_U,
        "rampup": RAMPUP,
    }

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, rampup: float = 0.4) -> None:
        super().__init__()
        self.threshold = threshold
        self.lambda_u = lambda_u
        self.rampup = rampup
        self.rampup_steps = 0

    def setup(self, ctx: SetupContext) -> None:
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u = batch["unlabeled"]["weak"]
        (logits_l, logits_u), _ = joint_forward(model, x_l, u)
        with torch.no_grad():
            pseudo, _, mask = confident_pseudo_labels(torch.softmax(logits_u.detach().float(), dim=-1), self.threshold)
        sup = self.supervised_ce(logits_l, y_l)
        unsup = masked_mean(cross_entropy(logits_u, pseudo, reduction="none"), mask)
        weight = self.lambda_u * linear_rampup(step, self.rampup_steps)
        return step_result(sup + weight * unsup, sup=sup, unsup=unsup, mask_rate=mask.float().mean(), pseudo_labels=pseudo,
                           mask=mask, unsup_weight=torch.tensor(weight))
