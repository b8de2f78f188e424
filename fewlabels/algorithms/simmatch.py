"""SimMatch ("SimMatch: Semi-supervised Learning with Similarity Matching", Zheng, You, Huang,
Wang, Qian and Xu, CVPR 2022).

Consistency at two levels, class (semantic) and instance (similarity to the labeled samples),
each pseudo-label calibrated by the other through a labeled memory bank:

    z = normalize(g(features(x)))              g: a projection head owned here (d -> d -> 128, ReLU)
    bank: one slot per labeled sample i, its embedding k_i and label y_i
    p   = DA(softmax(logits(u_weak)))                          class pseudo-label           (no gradient)
    q_i = softmax_i(z(u_weak) . k_i / T)                       instance pseudo-label        (no gradient)
    unfolding:   q^_i = q_i p_{y_i} / sum_j q_j p_{y_j}
    aggregation: q^agg_c = sum_{i: y_i = c} q_i,    p^ = alpha p + (1 - alpha) q^agg
    L_in = mean_b H(q^_b, softmax(z(u_strong_b) . k / T))
    L_u  = mean_b 1(max p^_b >= tau) H(p^_b, p(u_strong_b))
    loss = H(y, p(x_weak)) + lambda_u L_u + lambda_in L_in

After each step the labeled batch's embeddings enter the bank (gathered from every process):
k_i <- normalize(m k_i + (1 - m) z(x_weak_i)), a slot's first embedding as it is; a sample the
batch holds twice (small labeled sets repeat) takes the mean direction of its copies' new keys.

Defaults: the paper's T = 0.1, tau = 0.95, lambda_u = lambda_in = 1 and 128-d embeddings;
alpha = 0.9, m = 0.7 and distribution alignment toward the uniform marginal (an EMA, momentum
0.999, here) as in the reference implementation's CIFAR setting (USB's port), which is the one
followed: the bank takes the training model's own (detached) weak-view embeddings, from the one
joint forward pass (the ImageNet setting uses an EMA teacher). The bank has one slot per labeled sample
(the setup context's ``labeled_y`` sizes it; ``batch["labeled"]["index"]`` picks the slot); without an
index, slots are filled round-robin. Empty slots take no part; before the first labeled batch
has been stored, L_in is 0 and p^ = p.
"""

from __future__ import annotations

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
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.options import COUNT, FLAG, LAMBDA_U, MOMENTUM, NON_NEGATIVE, POSITIVE, THRESHOLD, UNIT, Option
from fewlabels.algorithms.components.parts import feature_dim_of, fit_buffers_to, mean_by_index, similarity_logits
from fewlabels.algorithms.components.result import step_result
from fewlabels.algorithms.components.thresholds import DistributionAlignment
from fewlabels.collectives import all_gather_cat
from fewlabels.losses import at_least_fp32, cross_entropy, masked_mean
from fewlabels.models.heads import projection_mlp

ROUND_ROBIN_SLOTS = 256  # bank size when neither labeled_y nor labeled indices say how many labeled samples there are


@register
class SimMatch(Algorithm):
    name = "simmatch"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {
        "threshold": THRESHOLD,
        "lambda_u": LAMBDA_U,
        "lambda_in": Option(NON_NEGATIVE, "weight of the instance-similarity loss"),
        "temperature": Option(POSITIVE, "temperature of the similarities to the labeled bank"),
        "alpha": Option(UNIT, "share of the class pseudo-label in the calibrated one"),
        "proj_dim": Option(COUNT, "size of the projected embeddings"),
        "bank_momentum": Option(MOMENTUM, "momentum of the labeled bank's embeddings"),
        "dist_align": Option(FLAG, "align the pseudo-labels' class marginal to the uniform one"),
    }

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, lambda_in: float = 1.0, temperature: float = 0.1,
                 alpha: float = 0.9, proj_dim: int = 128, bank_momentum: float = 0.7, dist_align: bool = True) -> None:
        super().__init__()
        self.threshold, self.lambda_u, self.lambda_in, self.temperature = threshold, lambda_u, lambda_in, temperature
        self.alpha, self.proj_dim, self.bank_momentum, self.dist_align = alpha, proj_dim, bank_momentum, dist_align
        self.head: nn.Sequential | None = None  # g, created in setup
        self.da: DistributionAlignment | None = None
        self.register_buffer("bank", torch.zeros(0, proj_dim))
        self.register_buffer("bank_labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("filled", torch.zeros(0, dtype=torch.bool))
        self.next_slot = 0  # round-robin position, used only without labeled indices (extra state)

    def setup(self, ctx: SetupContext) -> None:
        d = feature_dim_of(ctx.model, self.name)
        self.head = projection_mlp(d, d, self.proj_dim)
        self.da = DistributionAlignment(ctx.num_classes, 0.999) if self.dist_align else None
        self._resize(0 if ctx.labeled_y is None else len(ctx.labeled_y))

    def _resize(self, n: int) -> None:
        grow = n - len(self.bank)
        if grow > 0:
            here = self.bank.device
            self.bank = torch.cat([self.bank, torch.zeros(grow, self.proj_dim, device=here)])
            self.bank_labels = torch.cat([self.bank_labels, torch.zeros(grow, dtype=torch.long, device=here)])
            self.filled = torch.cat([self.filled, torch.zeros(grow, dtype=torch.bool, device=here)])

    def get_extra_state(self) -> dict[str, int]:
        return {"next_slot": self.next_slot}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.next_slot = int(state["next_slot"])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        fit_buffers_to(self, state_dict, prefix, ("bank", "bank_labels", "filled"))  # the bank grows without labeled_y
        super()._load_from_state_dict(state_dict, prefix, *args)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l, unl = batch["labeled"]["weak"], batch["labeled"]["y"], batch["unlabeled"]
        (logits_l, logits_w, logits_s), feats = joint_forward(model, x_l, unl["weak"], unl["strong"])
        z_l, z_w, z_s = F.normalize(at_least_fp32(self.head(torch.cat(feats))), dim=-1).split([len(f) for f in feats])
        keys, key_labels = self.bank[self.filled].to(z_w.device), self.bank_labels[self.filled].to(z_w.device)
        with torch.no_grad():
            p = torch.softmax(at_least_fp32(logits_w.detach()), dim=-1)
            p = self.da(p) if self.da is not None else p
            p_hat, q_hat = p, None
            if len(keys):
                q = torch.softmax(similarity_logits(z_w.detach(), keys, self.temperature), dim=-1)
                q_hat = q * p[:, key_labels]  # unfolding: p at each labeled sample's class
                q_hat = q_hat / q_hat.sum(dim=-1, keepdim=True)
                q_agg = torch.zeros_like(p).index_add_(1, key_labels, q)  # aggregation: q summed per class
                p_hat = self.alpha * p + (1 - self.alpha) * q_agg
            mask = p_hat.max(dim=-1).values >= self.threshold
        sup = self.supervised_ce(logits_l, y_l)
        unsup = masked_mean(cross_entropy(logits_s, p_hat, reduction="none"), mask)
        instance = (cross_entropy(similarity_logits(z_s, keys, self.temperature), q_hat) if q_hat is not None
                    else torch.zeros((), device=sup.device))
        self.store(z_l.detach(), y_l, batch["labeled"].get("index"))
        return step_result(sup + self.lambda_u * unsup + self.lambda_in * instance, sup=sup, unsup=unsup, instance=instance,
                           mask_rate=mask.float().mean(), pseudo_labels=p_hat.argmax(dim=-1), mask=mask)

    @torch.no_grad()
    def store(self, z: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None) -> None:
        """Labeled embeddings into their slots, from every process: k <- normalize(m k + (1 - m) z)."""
        here = self.bank.device
        z, y = all_gather_cat(at_least_fp32(z)).to(here), all_gather_cat(y).to(here)
        if index is None:
            slots = max(len(self.bank), ROUND_ROBIN_SLOTS)
            index = (self.next_slot + torch.arange(len(z), device=here)) % slots
            self.next_slot = int(index[-1] + 1) % slots
        else:
            index = all_gather_cat(index).to(here)
        self._resize(int(index.max()) + 1)
        m = self.bank_momentum
        blended = F.normalize(m * self.bank[index] + (1 - m) * z, dim=-1)
        rows, keys = mean_by_index(index, torch.where(self.filled[index, None], blended, z))
        self.bank[rows] = F.normalize(keys, dim=-1)  # copies of one sample: the mean direction of their keys
        self.bank_labels[index], self.filled[index] = y, True
