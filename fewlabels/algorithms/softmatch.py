"""SoftMatch ("SoftMatch: Addressing the Quantity-Quality Trade-off in Semi-supervised Learning").

Every unlabeled sample counts, weighted by a truncated Gaussian of its confidence:

    q_b        = UA(softmax(logits(u_weak_b)))        uniform alignment: q * (1/K) / p_model, renormalised
    lambda(q)  = 1 if max q >= mu_t, else exp(-(max q - mu_t)^2 / (2 sigma_t^2 / n_sigma^2))
    mu_t, sigma_t^2 = EMAs (momentum m) of the batch mean and variance of max q
    loss       = H(y, p(x_weak)) + lambda_u * mean_b[ lambda(q_b) * H(argmax q_b, p(u_strong_b)) ]

Paper defaults: m = 0.999, n_sigma = 2, lambda_u = 1, uniform alignment on, hard labels.
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
from fewlabels.algorithms.components.consistency import pseudo_label_consistency
from fewlabels.algorithms.components.options import FLAG, LAMBDA_U, MOMENTUM, POSITIVE, Option
from fewlabels.algorithms.components.thresholds import DistributionAlignment, TruncatedGaussianWeight


@register
class SoftMatch(Algorithm):
    name = "softmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    pool_calibration = True  # the pool temperature was checked on it (components/base.py)
    options = {
        "momentum": Option(MOMENTUM, "momentum of the confidence mean and variance"),
        "n_sigma": Option(POSITIVE, "width of the truncated Gaussian weight, in standard deviations"),
        "lambda_u": LAMBDA_U,
        "uniform_alignment": Option(FLAG, "align the predictions' class marginal to the uniform one"),
    }

    def __init__(self, momentum: float = 0.999, n_sigma: float = 2.0, lambda_u: float = 1.0,
                 uniform_alignment: bool = True) -> None:
        super().__init__()
        self.momentum = momentum
        self.n_sigma = n_sigma
        self.lambda_u = lambda_u
        self.uniform_alignment = bool(uniform_alignment)

    def setup(self, ctx: SetupContext) -> None:
        self.weighting = TruncatedGaussianWeight(ctx.num_classes, self.momentum, self.n_sigma)
        self.alignment = DistributionAlignment(ctx.num_classes, self.momentum)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        align = self.alignment if self.uniform_alignment else None
        out, _, _ = pseudo_label_consistency(model, batch, self.weighting, self.lambda_u, align=align,
                                             label_smoothing=self.label_smoothing)
        return out
