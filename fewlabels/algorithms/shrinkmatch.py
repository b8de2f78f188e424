"""ShrinkMatch ("Shrinking Class Space for Enhanced Certainty in Semi-Supervised Learning",
Yang, Zhao, Qi, Qiao, Shi and Zhao, ICCV 2023).

FixMatch learns only from unlabeled samples whose top confidence passes tau. ShrinkMatch also
learns from the others, in a class space shrunk until they are certain:

    p_b = softmax(logits(u_weak_b)) sorted p_(1) >= p_(2) >= ... >= p_(K), c_b = argmax p_b   (no gradient)
    certain (p_(1) >= tau):  L_u = mean_b 1(p_(1) >= tau) H(c_b, p(u_strong_b))             (FixMatch)
    uncertain: drop the confusion classes ranked 2..k, k the smallest with
               p_(1) / (p_(1) + sum_{j > k} p_(j)) >= tau;   S_b = {c_b} + the classes ranked k+1..K
    L_shrink = mean_b 1(uncertain, S_b exists) * p_(1) * -log softmax_{S_b}(aux(u_strong_b))[c_b]
    r_t = m r_{t-1} + (1 - m) * (fraction of certain samples in the batch),   r_0 = the first batch's
    loss = H(y, p(x_weak)) + lambda_u L_u + lambda_shrink r_t L_shrink

The two reweighting principles: each uncertain sample counts with its original top confidence
p_(1) (how reliable it is), and the whole term with r_t (how far the model has come).
The shrunk-space loss is computed by an auxiliary head on the strong view's features (a 3-layer
MLP with BatchNorm and LeakyReLU(0.1), width d/4, as in the authors' code), so the main
classifier is trained on the full class space only; the head is a submodule created in ``setup``
and trained by the loop's optimizer. At least the second-ranked class is
always dropped; a sample still below tau with only its top and its last class left adds
nothing, and with K = 2 there is nothing to shrink.

Paper defaults: tau = 0.95, lambda_u = 1, lambda_shrink = 1, m = 0.999. Differences from the
authors' CIFAR code: L_u uses FixMatch's hard pseudo-label (their code the soft one), and r_t
runs through the whole run (their code restarts it at every epoch).
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
from fewlabels.algorithms.components.consistency import joint_forward, thresholded_consistency
from fewlabels.algorithms.components.options import LAMBDA_U, MOMENTUM, NON_NEGATIVE, THRESHOLD, Option
from fewlabels.algorithms.components.parts import feature_dim_of
from fewlabels.algorithms.components.result import step_result
from fewlabels.algorithms.components.thresholds import FixedThreshold
from fewlabels.collectives import all_reduce_mean
from fewlabels.losses import masked_mean
from fewlabels.models.heads import projection_mlp


def shrunk_space(probs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: its top class (B,), the classes it keeps (B, K) after dropping its fewest top
    confusion classes so the top class reaches ``tau``, and whether such a space exists (B,)."""
    b, k = probs.shape
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)  # ties: the earlier class first, as argmax
    if k < 3:
        return order[:, 0], torch.ones_like(probs, dtype=torch.bool), torch.zeros(b, dtype=torch.bool, device=probs.device)
    tail = sorted_p.flip(-1).cumsum(-1).flip(-1)  # tail[:, j] = sum of the probabilities ranked j+1..K
    top = sorted_p[:, :1]
    passes = top / (top + tail[:, 2:]) >= tau  # column j-2: keep rank 1 and ranks j+1..K (drop ranks 2..j)
    first_kept = passes.float().argmax(dim=-1) + 2
    ranks = torch.arange(k, device=probs.device)
    keep_sorted = (ranks == 0) | (ranks >= first_kept[:, None])
    return order[:, 0], torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted), passes.any(dim=-1)


@register
class ShrinkMatch(Algorithm):
    name = "shrinkmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {
        "threshold": THRESHOLD,
        "lambda_u": LAMBDA_U,
        "lambda_shrink": Option(NON_NEGATIVE, "weight of the loss in the shrunk class space"),
        "momentum": Option(MOMENTUM, "momentum of the running share of certain samples"),
    }

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, lambda_shrink: float = 1.0,
                 momentum: float = 0.999) -> None:
        super().__init__()
        self.threshold, self.lambda_u, self.lambda_shrink, self.momentum = threshold, lambda_u, lambda_shrink, momentum
        self.weigh = FixedThreshold(threshold)
        self.head: nn.Sequential | None = None  # the auxiliary head, created in setup
        self.register_buffer("certain_ratio", torch.tensor(float("nan")))  # r_t; NaN until the first batch

    def setup(self, ctx: SetupContext) -> None:
        d = feature_dim_of(ctx.model, self.name)
        self.head = projection_mlp(d, max(d // 4, 1), ctx.num_classes, num_layers=3, batchnorm=True,
                                   activation=lambda: nn.LeakyReLU(0.1))

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l, unl = batch["labeled"]["weak"], batch["labeled"]["y"], batch["unlabeled"]
        (logits_l, logits_weak, logits_strong), (_, _, feats_strong) = joint_forward(model, x_l, unl["weak"], unl["strong"])
        unsup, pseudo, weight = thresholded_consistency(logits_weak, logits_strong, self.weigh, unl.get("index"))
        certain = weight >= 0.5
        with torch.no_grad():
            probs = torch.softmax(logits_weak.detach().float(), dim=-1)
            _, keep, found = shrunk_space(probs, self.threshold)  # its top class is pseudo (argmax; ties broken alike)
            conf = probs.gather(1, pseudo[:, None]).squeeze(1)
            shrink_weight = (~certain & found).float() * conf
            ratio = all_reduce_mean(certain.float().mean()).to(self.certain_ratio.device)
            m = self.momentum
            first = bool(torch.isnan(self.certain_ratio))
            self.certain_ratio = ratio if first else m * self.certain_ratio + (1 - m) * ratio
        sup = self.supervised_ce(logits_l, y_l)
        aux = self.head(feats_strong).float().masked_fill(~keep, float("-inf"))
        shrink = masked_mean(-F.log_softmax(aux, dim=-1).gather(1, pseudo[:, None]).squeeze(1), shrink_weight)
        r = self.certain_ratio.to(sup.device)
        return step_result(sup + self.lambda_u * unsup + self.lambda_shrink * r * shrink, sup=sup, unsup=unsup,
                           mask_rate=certain.float().mean(), shrink=shrink, certain_ratio=r,
                           shrink_rate=(shrink_weight > 0).float().mean(), pseudo_labels=pseudo, mask=certain)
