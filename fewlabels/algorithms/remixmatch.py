"""ReMixMatch ("ReMixMatch: Semi-Supervised Learning with Distribution Alignment and
Augmentation Anchoring", Berthelot, Carlini, Cubuk, Kurakin, Sohn, Zhang and Raffel).

    q_b = Sharpen( Normalize( p(u_weak_b) * p_target / p_model ), T )      DA + guess, a constant
    MixUp of X^ = (x_weak, onehot(y)) and U^ = (u_strong_k, q) for k = 1..K, as in MixMatch
    loss = mean_X' H(t, p(x'))  +  w(t) lambda_u mean_U' H(t, p(u'))  +  w(t) lambda_u1 mean_b H(q_b, p(u_strong_1_b))
           (+ lambda_rot mean_b H(r_b, p_rot(rotate(u_strong_1_b, r_b))))

Distribution alignment pulls the guesses' class marginal toward the labeled one (p_model is
a running mean of the model's predictions on unlabeled data); augmentation anchoring takes
the target from a weak view and asks K strong views to match it.

Paper defaults: K = 8, T = 0.5, alpha = 0.75, lambda_u = 1.5, lambda_u1 = 0.5 (the
pre-mixup term), lambda_rot = 0.5, p_model averaged over the last 128 batches, labeled
images strongly augmented (CTAugment). Choices here:
- K = 2 strong views: each costs a forward and backward pass, and our budget is a CPU.
- p_model is an EMA with momentum 0.99, whose memory (~100 batches) is close to the
  paper's 128-batch window.
- p_target is the class frequency of the labeled samples seen so far (plus one per class),
  which converges to the labeled distribution within a few passes over the labeled set, so
  imbalanced label sets are handled; with labels_per_class it tends to uniform.
- labeled samples take the weak view (with RandAugment, which is not tuned to keep labels
  like CTAugment, strong views of the few labels would corrupt them), as in USB.
- the unlabeled weights ramp up linearly over ``rampup`` = 40% of the run, as for MixMatch.
- rotation prediction is off by default (``rotation=True`` turns it on, square images only).
  Its 4-way linear head is a submodule created in ``setup``; the loop's optimizer trains it
  with the model's recipe and schedule.
The guessing pass leaves BatchNorm running statistics alone.
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
from fewlabels.algorithms.components.mixing import sharpen
from fewlabels.algorithms.components.options import COUNT, DA_MOMENTUM, FLAG, LAMBDA_U, NON_NEGATIVE, POSITIVE, RAMPUP, Option
from fewlabels.algorithms.components.parts import feature_dim_of
from fewlabels.algorithms.components.ramps import linear_rampup, ramp_steps
from fewlabels.algorithms.components.result import step_result
from fewlabels.algorithms.components.thresholds import DistributionAlignment
from fewlabels.algorithms.mixmatch import mix_labeled_and_unlabeled
from fewlabels.augment import get_group
from fewlabels.collectives import all_reduce_mean
from fewlabels.errors import FewLabelsError
from fewlabels.losses import cross_entropy
from fewlabels.models.heads import linear_head


def rotate_quarters(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each square image turned by a random multiple of 90 degrees; returns the images and the multiples 0..3."""
    k = torch.randint(4, (len(x),), generator=gen, device=gen.device).to(x.device)
    return get_group("rot4").apply(x, k), k


@register
class ReMixMatch(Algorithm):
    name = "remixmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong", "strong#2"]}  # set per instance from num_strong
    options = {
        "lambda_u": LAMBDA_U,
        "lambda_u1": Option(NON_NEGATIVE, "weight of the pre-mixup loss on the first strong view"),
        "temperature": Option(POSITIVE, "sharpening temperature of the label guesses"),
        "alpha": Option(POSITIVE, "Beta(alpha, alpha) parameter of mixup"),
        "num_strong": Option(COUNT, "strong views anchored to each weak view"),
        "da_momentum": DA_MOMENTUM,
        "rotation": Option(FLAG, "add the rotation-prediction loss (square images)"),
        "lambda_rot": Option(NON_NEGATIVE, "weight of the rotation loss"),
        "rampup": RAMPUP,
    }

    def __init__(self, lambda_u: float = 1.5, lambda_u1: float = 0.5, temperature: float = 0.5, alpha: float = 0.75,
                 num_strong: int = 2, da_momentum: float = 0.99, rotation: bool = False, lambda_rot: float = 0.5,
                 rampup: float = 0.4) -> None:
        super().__init__()
        self.lambda_u, self.lambda_u1, self.lambda_rot = lambda_u, lambda_u1, lambda_rot
        self.temperature = temperature
        self.alpha = alpha
        self.num_strong = num_strong
        self.da_momentum = da_momentum
        self.rotation = rotation
        self.rampup = rampup
        self.rampup_steps = 0
        self.rotation_head: nn.Linear | None = None  # created in setup when rotation is on
        self.views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"] + [f"strong#{k}" for k in range(2, num_strong + 1)]}

    def setup(self, ctx: SetupContext) -> None:
        self.da = DistributionAlignment(ctx.num_classes, self.da_momentum)
        # one pseudo-count per class: none is ruled out before its first label
        self.register_buffer("label_counts", torch.ones(ctx.num_classes))
        self.rampup_steps = ramp_steps(self.rampup, ctx.total_steps)
        if self.rotation:
            feature_dim = feature_dim_of(ctx.model, self.name, fix="use a built-in model or set rotation=False")
            self.rotation_head = linear_head(feature_dim, 4)

    def align(self, probs: torch.Tensor, y_l: torch.Tensor) -> torch.Tensor:
        """Distribution alignment toward the labeled class frequencies seen so far (updates both running statistics)."""
        counts = torch.bincount(y_l, minlength=len(self.label_counts)).float()
        self.label_counts += all_reduce_mean(counts).to(self.label_counts.device)
        self.da.p_target = self.label_counts / self.label_counts.sum()
        return self.da(probs)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        gen = batch["generator"]
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        clean = batch["unlabeled"]["weak"]
        if self.rotation and (clean.dim() != 4 or clean.shape[-1] != clean.shape[-2]):
            what = "feature vectors" if clean.dim() != 4 else f"{clean.shape[-2]}x{clean.shape[-1]} images"
            raise FewLabelsError(f"remixmatch: rotation=True needs square images, but the data are {what}; set rotation=False.")
        u_strong = [batch["unlabeled"][name] for name in self.views["unlabeled"][1:]]
        n_l, n_u = len(x_l), len(clean)
        with torch.no_grad(), bn_stats_frozen(model):
            guess_logits, _ = model(batch["unlabeled"]["weak"])
            q = sharpen(self.align(torch.softmax(guess_logits.float(), dim=-1), y_l), self.temperature)
        mixed_x, mixed_t = mix_labeled_and_unlabeled(x_l, F.one_hot(y_l, q.shape[-1]).float(), u_strong, q, self.alpha, gen)
        parts = [mixed_x, u_strong[0]]
        if self.rotation:
            rotated, turns = rotate_quarters(u_strong[0], gen)
            parts.append(rotated)
        logits, features = model(torch.cat(parts))
        n_mixed = len(mixed_x)
        sup = self.supervised_ce(logits[:n_l], mixed_t[:n_l])
        unsup = cross_entropy(logits[n_l:n_mixed], mixed_t[n_l:])
        unsup1 = cross_entropy(logits[n_mixed:n_mixed + n_u], q)
        ramp = linear_rampup(step, self.rampup_steps)
        total = sup + ramp * (self.lambda_u * unsup + self.lambda_u1 * unsup1)
        extra = {}
        if self.rotation:
            rot = cross_entropy(self.rotation_head(features[n_mixed + n_u:]), turns)
            total = total + self.lambda_rot * rot
            extra["rotation"] = rot
        return step_result(total, sup=sup, unsup=unsup, unsup_premix=unsup1, unsup_weight=torch.tensor(ramp * self.lambda_u),
                           **extra, pseudo_labels=q.argmax(dim=-1), mask=torch.ones(n_u, dtype=torch.bool, device=q.device))
