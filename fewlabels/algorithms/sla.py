"""Self-supervised label augmentation, SLA ("Self-supervised Label Augmentation via Input
Transformations", Lee, Hwang and Shin, ICML 2020), with its self-distillation (SLA+SD).

Every labeled image x is shown under all M elements t_1 .. t_M of a transformation group
(``rot4``: 0/90/180/270 degrees; t_1 is the identity), and a joint head w on the model's
features f learns ONE softmax over the C*M joint labels (class i, transformation j):

    z_ij(x~) = w_ij . f(x~)                                    joint logits of an input x~
    L_SLA(x, y) = (1/M) sum_j  -log softmax( z(t_j(x)) )_(y, j)

Aggregated inference (SLA+AG, the paper's Eq. for P_aggregated): for each class the joint logit
of the transformation actually applied, averaged over the M transformed copies, then a softmax:

    s_i(x) = (1/M) sum_j z_ij(t_j(x)),        P_agg(i | x) = exp(s_i) / sum_k exp(s_k)

Self-distillation (SLA+SD) moves that ensemble into the model's own C-way head u, which sees
the untransformed x once (the single pass that evaluation, ``predict`` and ``export`` use):

    L_SLA+SD(x, y) = L_SLA(x, y) + KL( P_agg(. | x) || softmax(u . f(x)) ) + beta * CE(u . f(x), y)

P_agg is a constant there (detached: the KL term trains u and the backbone through f(x), never
w), the KL has no temperature, and the paper chooses beta in {0, 1}; beta = 1 by default, so
the single head also sees the true label from the first step on.

Layout: joint label (i, j) is index i * M + j; the M transformed copies of a batch are stacked
element-major (``TransformGroup.all``), so rows [j*B, (j+1)*B) hold t_j of the batch. All M*B
images go through one forward pass (BatchNorm sees them together), as in the paper; the
labeled images take the loop's weak view (pad-and-crop, flips where the data allow) first,
the paper's standard augmentation.

``sla-fixmatch`` adds FixMatch's thresholded consistency on unlabeled data to the labeled
SLA+SD loss, through the threshold family's own step (``consistency.thresholded_consistency``)
on the single-pass head: labeled copies, unlabeled weak and strong views share one forward pass.

The joint head is a submodule created in ``setup`` (trained by the loop's optimizer, saved in
``state_dict``), with an exponential moving average of it (the same warmed-up decay as the loop's
EMA model, the setup context's ``ema_decay``), so ``aggregated_predict`` can pair the loop's EMA
model with an EMA joint head.
"""

from __future__ import annotations

import difflib
from typing import Any

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
from fewlabels.algorithms.components.options import NON_NEGATIVE, Option, Rule
from fewlabels.algorithms.components.parts import feature_dim_of
from fewlabels.algorithms.components.result import step_result
from fewlabels.algorithms.fixmatch import FIXMATCH_OPTIONS, set_fixmatch_options
from fewlabels.augment import GROUPS, TransformGroup, get_group
from fewlabels.errors import FewLabelsError
from fewlabels.models.ema import EMA
from fewlabels.models.heads import linear_head


def joint_labels(y: torch.Tensor, m: int) -> torch.Tensor:
    """Joint labels (y_b, j) = y_b * M + j of the element-major stack of M transformed copies: (M * B,)."""
    j = torch.arange(m, device=y.device).repeat_interleave(len(y))
    return y.repeat(m) * m + j


def aggregate(joint_logits: torch.Tensor, m: int) -> torch.Tensor:
    """s_i = (1/M) sum_j z_ij(t_j(x)): (M * B, C * M) joint logits of the element-major stack -> (B, C)."""
    mb, cm = joint_logits.shape
    z = joint_logits.view(m, mb // m, cm // m, m)  # [j, b, i, k]: logit (i, k) of copy t_j(x_b)
    return z.diagonal(dim1=0, dim2=3).mean(-1)  # keep k = j


def aggregated_logits(model: nn.Module, joint_head: nn.Module, x: torch.Tensor, group: str | TransformGroup = "rot4",
                      batch_size: int = 256) -> torch.Tensor:
    """The aggregated scores s(x) (N, C) of SLA+AG, in eval mode; softmax them for P_agg.

    ``batch_size`` samples per forward pass, i.e. M * batch_size transformed images.
    """
    group = get_group(group) if isinstance(group, str) else group
    m = len(group)
    device = next(model.parameters()).device
    modes = (model.training, joint_head.training)
    model.eval()
    joint_head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            _, feats = model(group.all(xb))
            out.append(aggregate(joint_head(feats).float(), m).cpu())
    model.train(modes[0])
    joint_head.train(modes[1])
    return torch.cat(out) if out else torch.empty(0)


def aggregated_predict(model: nn.Module, joint_head: nn.Module, x: torch.Tensor, group: str | TransformGroup = "rot4",
                       batch_size: int = 256) -> torch.Tensor:
    """P_agg(. | x) (N, C): class probabilities from all M transformed copies of each sample (M forward passes' worth)."""
    return torch.softmax(aggregated_logits(model, joint_head, x, group, batch_size), dim=-1)


def refuse_group(algorithm: str, name: str, group: Any) -> None:
    """An unknown group, with the closest known one."""
    close = difflib.get_close_matches(group, list(GROUPS), n=1) if isinstance(group, str) else []
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise FewLabelsError(f"{algorithm}: unknown transformation group {group!r}: {hint}choose one of {', '.join(GROUPS)}.")


GROUP = Option(Rule(f"one of {', '.join(GROUPS)}", lambda v: isinstance(v, str) and v in GROUPS, refuse_group),
               "the transformations whose labels join the class labels")


@register
class SLA(Algorithm):
    name = "sla"
    views = {"labeled": ["weak"], "unlabeled": []}
    options = {"group": GROUP, "beta": Option(NON_NEGATIVE, "weight of the self-distillation into the single-pass head")}

    def __init__(self, group: str = "rot4", beta: float = 1.0) -> None:
        super().__init__()
        self.group = group
        self.beta = beta
        self.transforms = get_group(group)
        self.joint_head: nn.Linear | None = None  # created in setup, with its EMA
        self.joint_head_ema: EMA | None = None

    def check_data(self, sample_shape: tuple[int, ...], num_classes: int, hflip: bool = False) -> None:
        if len(sample_shape) != 3:
            raise FewLabelsError(f"{self.name}: transformation group '{self.group}' transforms images, but the data are "
                                 f"feature vectors of shape {tuple(sample_shape)}; use an algorithm without label "
                                 "augmentation (supervised, fixmatch) for features.")
        h, w = sample_shape[1], sample_shape[2]
        if self.transforms.rotations == 4 and h != w:
            raise FewLabelsError(f"{self.name}: transformation group '{self.group}' turns images by 90 degrees, which needs "
                                 f"square images, but these are {h}x{w}; use group 'rot2' (or 'hflip' with hflip=false), "
                                 "or resize them to a square.")
        if self.transforms.flips and hflip:
            # a label transformation must not also be a random augmentation, or its label cannot be predicted
            raise FewLabelsError(f"{self.name}: transformation group '{self.group}' predicts horizontal flips, but the weak "
                                 "augmentation already flips images at random; use group 'rot4' or 'rot2', or set hflip=false.")

    def setup(self, ctx: SetupContext) -> None:
        feature_dim = feature_dim_of(ctx.model, self.name)
        self.joint_head = linear_head(feature_dim, ctx.num_classes * len(self.transforms))
        self.joint_head_ema = EMA(self.joint_head, ctx.ema_decay)

    def after_step(self, model: nn.Module) -> None:
        self.joint_head_ema.update(self.joint_head)

    def labeled_losses(self, logits: torch.Tensor, feats: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """SLA+SD on the forward outputs of the M-copy stack of a labeled batch (element-major, identity first)."""
        m, b = len(self.transforms), len(y)
        joint_logits = self.joint_head(feats)
        joint = self.supervised_ce(joint_logits, joint_labels(y, m))
        single = logits[:b]  # the C-way head on t_1(x) = x
        target = F.softmax(aggregate(joint_logits.detach().float(), m), dim=-1)  # P_agg, a constant
        distill = F.kl_div(F.log_softmax(single.float(), dim=-1), target, reduction="batchmean")
        ce = self.supervised_ce(single, y)
        sup = joint + distill + self.beta * ce
        return {"sup": sup, "joint": joint, "distill": distill, "single_ce": ce}

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x, y = batch["labeled"]["weak"], batch["labeled"]["y"]
        logits, feats = model(self.transforms.all(x))
        parts = self.labeled_losses(logits, feats, y)
        return step_result(parts["sup"], **parts)

    def inference_variants(self, model: nn.Module, x: torch.Tensor, ema: bool = True) -> dict[str, torch.Tensor]:
        """Extra test-time predictions (N, C) by name, for the loop to score: SLA+AG with the (EMA) joint head."""
        if self.joint_head_ema is None:
            return {}
        head = self.joint_head_ema.module if ema else self.joint_head
        return {"aggregated": aggregated_logits(model, head, x, self.transforms)}


@register
class SLAFixMatch(SLA):
    """SLA+SD on the labeled batch plus FixMatch's thresholded consistency on the unlabeled one:

    total = L_SLA+SD(x, y) + lambda_u * mean_b[ 1(max q_b >= tau) * H(argmax q_b, p(u_strong_b)) ],
    q_b = softmax(u . f(u_weak_b) / T) from the single-pass head, without gradient.
    """

    name = "sla-fixmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {**SLA.options, **FIXMATCH_OPTIONS}

    def __init__(self, group: str = "rot4", beta: float = 1.0, threshold: float = 0.95, lambda_u: float = 1.0,
                 temperature: float = 1.0) -> None:
        super().__init__(group, beta)
        set_fixmatch_options(self, threshold, lambda_u, temperature)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x, y = batch["labeled"]["weak"], batch["labeled"]["y"]
        unl = batch["unlabeled"]
        (logits_l, logits_weak, logits_strong), (feats_l, _, _) = joint_forward(model, self.transforms.all(x), unl["weak"],
                                                                               unl["strong"])
        parts = self.labeled_losses(logits_l, feats_l, y)
        unsup, pseudo, weight = thresholded_consistency(logits_weak, logits_strong, self.weigh, unl.get("index"),
                                                        self.temperature)
        return step_result(parts["sup"] + self.lambda_u * unsup, unsup=unsup, mask_rate=weight.float().mean(),
                           pseudo_labels=pseudo, mask=weight >= 0.5, **parts)
