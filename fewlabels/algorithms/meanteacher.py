"""Mean Teacher ("Mean teachers are better role models: Weight-averaged consistency targets
improve semi-supervised deep learning results", Tarvainen and Valpola).

    loss = H(y, p_theta(x_weak))  +  w(t) * mean_b[ 1/C * || p_theta(u_weak1_b) - p_theta'(u_weak2_b) ||^2 ]
    theta' <- a theta' + (1 - a) theta   after every optimizer step

The teacher theta' is an exponential moving average of the student's weights; it sees its
own augmentation of each unlabeled sample and gives the target (no gradient). w(t) is the
sigmoid ramp-up lambda_u * exp(-5 (1 - t/T_r)^2).

Paper: a = 0.99 during ramp-up then 0.999, consistency weight 100 on CIFAR-10 (MSE averaged
over classes, as here). Here: a = 0.999 with the EMA's warm-up min(a, (1+t)/(10+t)),
which plays the role of the paper's lower early decay; lambda_u = 50 (USB's benchmark
value); ramp over ``rampup`` = 40% of the run. The teacher runs in training mode, as in the
paper's code, so its BatchNorm uses the batch's statistics like the student's.
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
from fewlabels.algorithms.components.options import LAMBDA_U, RAMPUP, UNIT, Option
from fewlabels.algorithms.components.ramps import ramp_steps, sigmoid_rampup
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import softmax_mse
from fewlabels.models.ema import EMA


@register
class MeanTeacher(Algorithm):
    name = "meanteacher"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "weak#2"]}  # student and teacher see independent draws
    options = {
        "lambda_u": LAMBDA_U,
        "decay": Option(UNIT, "EMA decay of the teacher's weights"),
        "rampup": RAMPUP,
    }

    def __init__(self, lambda_u: float = 50.0, decay: float = 0.999, rampup: float = 0.4) -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.decay = decay
        self.rampup = rampup
        self.rampup_steps = 0

    def setup(self, ctx: SetupContext) -> None:
        self.teacher = EMA(ctx.model, self.decay)
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)

    def after_step(self, model: nn.Module) -> None:
        self.teacher.update(model)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        teacher = self.teacher.module.train()
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u_student = batch["unlabeled"]["weak"]
        u_teacher = batch["unlabeled"]["weak#2"]
        (logits_l, logits_u), _ = joint_forward(model, x_l, u_student)
        with torch.no_grad():
            target = torch.softmax(teacher(u_teacher)[0].float(), dim=-1)
        sup = self.supervised_ce(logits_l, y_l)
        unsup = softmax_mse(logits_u.float(), target).mean()
        weight = self.lambda_u * sigmoid_rampup(step, self.rampup_steps)
        return step_result(sup + weight * unsup, sup=sup, unsup=unsup, unsup_weight=torch.tensor(weight),
                           pseudo_labels=target.argmax(dim=-1),  # the teacher's top class, for the pseudo-label accuracy
                           mask=torch.ones(len(u_student), dtype=torch.bool, device=logits_l.device))
