"""FreeMatch ("FreeMatch: Self-adaptive Thresholding for Semi-supervised Learning").

Self-adaptive thresholds from the model's own confidence, plus a fairness term:

    tau_t      = m tau_{t-1} + (1 - m) mean_b max q_b                 (global, starts at 1/K)
    p~_t(c)    = m p~_{t-1}(c) + (1 - m) mean_b q_b(c)                 (local)
    tau_t(c)   = MaxNorm(p~_t)(c) * tau_t
    L_u        = mean_b[ 1(max q_b >= tau_t(argmax q_b)) * H(argmax q_b, p(u_strong_b)) ]
    L_f        = sum_c SumNorm(p~_t / h~_t)(c) * log SumNorm(p_bar / h_bar)(c)
    loss       = L_s + lambda_u L_u + lambda_f L_f

p_bar and h_bar are the mean probability and the hard-label histogram of the confident
strong views in the batch; h~_t is the EMA histogram. Minimising L_f (a negative
cross-entropy) pushes the batch's pseudo-label distribution away from collapsing on a
few classes. Paper defaults: m = 0.999, lambda_u = 1, lambda_f = 0.01 (0.001 at very
few labels is also used; we keep 0.01).
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.consistency import pseudo_label_consistency
from fewlabels.algorithms.components.options import LAMBDA_U, MOMENTUM, NON_NEGATIVE, Option
from fewlabels.algorithms.components.thresholds import SelfAdaptiveThreshold


def sum_norm(v: torch.Tensor) -> torch.Tensor:
    return v / v.sum(dim=-1, keepdim=True).clamp(min=1e-12)


@register
class FreeMatch(Algorithm):
    name = "freematch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    pool_calibration = True  # the pool temperature was checked on it (components/base.py)
    options = {
        "momentum": Option(MOMENTUM, "momentum of the self-adaptive global and per-class confidence"),
        "lambda_u": LAMBDA_U,
        "lambda_f": Option(NON_NEGATIVE, "weight of the self-adaptive fairness term"),
    }

    def __init__(self, momentum: float = 0.999, lambda_u: float = 1.0, lambda_f: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.lambda_u = lambda_u
        self.lambda_f = lambda_f

    def setup(self, ctx: SetupContext) -> None:
        self.thresholds = SelfAdaptiveThreshold(ctx.num_classes, self.momentum)

    def fairness(self, logits_strong: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative cross-entropy between the EMA and the batch's normalised pseudo-label distributions."""
        if not bool(mask.any()):
            return logits_strong.sum() * 0.0
        probs = torch.softmax(logits_strong[mask.bool()], dim=-1)
        k = probs.shape[-1]
        h_bar = torch.bincount(probs.argmax(-1), minlength=k).float() / len(probs)
        batch_dist = sum_norm(probs.mean(0) / h_bar.clamp(min=1e-12) * (h_bar > 0))
        th = self.thresholds
        target = sum_norm(th.local_p / th.histogram.clamp(min=1e-12)).to(probs.device)
        return (target * torch.log(batch_dist + 1e-12)).sum()

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        out, logits_strong, mask = pseudo_label_consistency(model, batch, self.thresholds, self.lambda_u,
                                                              label_smoothing=self.label_smoothing)
        fair = self.fairness(logits_strong, mask)
        out.update(total=out["total"] + self.lambda_f * fair, fairness=fair, global_threshold=self.thresholds.global_tau.clone())
        return out
