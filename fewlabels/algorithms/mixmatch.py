"""MixMatch ("MixMatch: A Holistic Approach to Semi-Supervised Learning", Berthelot, Carlini,
Goodfellow, Papernot, Oliver and Raffel).

    q_b = Sharpen( 1/K sum_k p(u_weak_k_b), T )                       label guess, a constant
    W = Shuffle( X^ ++ U^ ),  X^ = (x_weak, onehot(y)),  U^ = (u_weak_k, q) for k = 1..K
    X' = MixUp(X^, W[:|X^|]),  U' = MixUp(U^, W[|X^|:]),  MixUp with lambda' = max(lambda, 1 - lambda),
                                                          lambda ~ Beta(alpha, alpha) per sample
    loss = mean_X' H(t, p(x'))  +  w(t) * mean_U'[ 1/C * || t - p(u') ||^2 ]

Guessing averages K augmentations and sharpens (entropy minimisation); MixUp between
labeled and unlabeled samples regularises both. lambda' >= 0.5 keeps each mixed sample
closer to its own origin, so X' still counts as labeled and U' as unlabeled. The mixed batch
goes through the model in one pass (the paper's code splits and interleaves it only
because it runs several passes).

Paper defaults: K = 2, T = 0.5, alpha = 0.75, lambda_u = 100, ramped up
linearly over the first 16k of ~1M steps (1.6%). Here the linear ramp spans ``rampup`` = 40%
of the run, as in USB: our runs are a few thousand steps, and a weight of 100 on guesses from
a model that has seen a handful of labels for a few dozen steps would drown the labels.
The guessing pass leaves BatchNorm running statistics alone (the mixed pass updates them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewlabels.algorithms.components.base import (
    Algorithm,
    Batch,
    SetupContext,
    register,
)
from fewlabels.algorithms.components.consistency import bn_stats_frozen
from fewlabels.algorithms.components.mixing import mixup, sharpen
from fewlabels.algorithms.components.options import COUNT, LAMBDA_U, POSITIVE, RAMPUP, Option
from fewlabels.algorithms.components.ramps import linear_rampup, ramp_steps
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import softmax_mse


def mix_labeled_and_unlabeled(x_l: torch.Tensor, t_l: torch.Tensor, u_views: list[torch.Tensor], q: torch.Tensor,
                              alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp of X^ = (x_l, t_l) ++ U^ = (each view of u, q) with a shuffle of the same union.

    Row order is kept: the first len(x_l) mixed rows are X', the rest U' (view by view).
    """
    x = torch.cat([x_l, *u_views])
    t = torch.cat([t_l, q.repeat(len(u_views), 1)])
    mixed_x, mixed_t, _ = mixup(x, t, alpha, gen, keep_first=True)
    return mixed_x, mixed_t


@register
class MixMatch(Algorithm):
    name = "mixmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "weak#2"]}  # set per instance from num_augmentations
    options = {
        "lambda_u": LAMBDA_U,
        "temperature": Option(POSITIVE, "sharpening temperature of the label guesses"),
        "alpha": Option(POSITIVE, "Beta(alpha, alpha) parameter of mixup"),
        "num_augmentations": Option(COUNT, "weak views averaged into each label guess"),
        "rampup": RAMPUP,
    }

    def __init__(self, lambda_u: float = 100.0, temperature: float = 0.5, alpha: float = 0.75, num_augmentations: int = 2,
                 rampup: float = 0.4) -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.temperature = temperature
        self.alpha = alpha
        self.num_augmentations = num_augmentations
        self.views = {"labeled": ["weak"], "unlabeled": ["weak"] + [f"weak#{k}" for k in range(2, num_augmentations + 1)]}
        self.rampup = rampup
        self.rampup_steps = 0

    def setup(self, ctx: SetupContext) -> None:
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        gen = batch["generator"]
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u_views = [batch["unlabeled"][name] for name in self.views["unlabeled"]]
        n_l, n_u = len(x_l), len(u_views[0])
        with torch.no_grad(), bn_stats_frozen(model):
            guess_logits, _ = model(torch.cat(u_views))
            probs = torch.softmax(guess_logits.float(), dim=-1).view(self.num_augmentations, n_u, -1).mean(dim=0)
            q = sharpen(probs, self.temperature)
        t_l = F.one_hot(y_l, q.shape[-1]).float()
        mixed_x, mixed_t = mix_labeled_and_unlabeled(x_l, t_l, u_views, q, self.alpha, gen)
        logits, _ = model(mixed_x)
        sup = self.supervised_ce(logits[:n_l], mixed_t[:n_l])
        unsup = softmax_mse(logits[n_l:].float(), mixed_t[n_l:]).mean()
        weight = self.lambda_u * linear_rampup(step, self.rampup_steps)
        return step_result(sup + weight * unsup, sup=sup, unsup=unsup, unsup_weight=torch.tensor(weight),
                           pseudo_labels=q.argmax(dim=-1),  # the guesses' top class, for the pseudo-label accuracy
                           mask=torch.ones(n_u, dtype=torch.bool, device=q.device))
