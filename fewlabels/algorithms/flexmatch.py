"""FlexMatch ("FlexMatch: Boosting Semi-Supervised Learning with Curriculum Pseudo Labeling").

FixMatch with per-class thresholds that follow each class's learning status:

    sigma_t(c) = #{unlabeled u : latest prediction above tau is c}
    beta_t(c)  = sigma_t(c) / max(max_c' sigma_t(c'), N - sum_c' sigma_t(c'))   (threshold warm-up)
    T_t(c)     = M(beta_t(c)) * tau,   M(x) = x / (2 - x)
    loss = H(y, p(x_weak)) + lambda_u * mean_b[ 1(max q_b >= T_t(argmax q_b)) * H(argmax q_b, p(u_strong_b)) ]

Paper defaults: tau = 0.95, lambda_u = 1, convex mapping, warm-up on. Hard classes get
lower thresholds early, so they are not starved of pseudo-labels (FixMatch's failure mode
when a class is rarely predicted confidently).
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.consistency import pseudo_label_consistency
from fewlabels.algorithms.components.options import FLAG, LAMBDA_U, UNIT, Option
from fewlabels.algorithms.components.thresholds import CurriculumThreshold


@register
class FlexMatch(Algorithm):
    name = "flexmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    pool_calibration = True  # the pool temperature was checked on it (components/base.py)
    options = {
        "threshold": Option(UNIT, "the highest per-class threshold, scaled down for classes still being learned"),
        "lambda_u": LAMBDA_U,
        "warmup": Option(FLAG, "count the still-unused samples as a class of their own while thresholds warm up"),
    }

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, warmup: bool = True) -> None:
        super().__init__()
        self.threshold = threshold
        self.lambda_u = lambda_u
        self.warmup = bool(warmup)

    def setup(self, ctx: SetupContext) -> None:
        self.curriculum = CurriculumThreshold(self.threshold, ctx.num_unlabeled, ctx.num_classes, self.warmup)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        out, _, _ = pseudo_label_consistency(model, batch, self.curriculum, self.lambda_u,
                                             label_smoothing=self.label_smoothing)
        return out
