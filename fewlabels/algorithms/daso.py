"""DASO ("DASO: Distribution-Aware Semantics-Oriented Pseudo-label for Imbalanced Semi-Supervised
Learning", Oh, Kim and Kweon, CVPR 2022), on FixMatch.

A linear classifier trained on imbalanced data over-predicts the head classes; a similarity
classifier on balanced class prototypes leans the other way. DASO blends the two per class:

    c_k = mean of the class-k queue of labeled features (EMA teacher, weak view; Q per class)
    p^ = softmax(logits(u_weak))                                linear pseudo-label        (no gradient)
    q^ = softmax(cos(z(u_weak), C) / T_proto)                   semantic pseudo-label      (no gradient)
    m^ = class distribution of the recent pseudo-labels (counted over ``dist_period`` steps)
    v_k = (m^_k / max_k' m^_k')^(1 / T_dist),   p' = (1 - v_k*) p^ + v_k* q^,   k* = argmax p^
    L_u     = mean_b 1(max p'_b >= tau) H(argmax p'_b, p(u_strong_b))
    L_align = mean_b H(q^_b, softmax(cos(z(u_strong_b), C) / T_proto))
    loss = H(y, p(x_weak)) + lambda_u L_u + lambda_align L_align

Samples whose linear prediction is an over-predicted class get more of the semantic label; the
alignment loss pulls the strong view's features toward the balanced prototypes.

Defaults (the paper's CIFAR-10-LT setting, as in USB's port): T_proto = 0.05, T_dist = 1.5,
Q = 256, lambda_align = 1, tau = 0.95, m^ refreshed every 100 steps, plain FixMatch for the first
5,120 steps of 262,144 (``warmup`` = 0.02 of the run).
The queue fills from the first step; the blend and L_align start after the warm-up and once every
class has a prototype. Before the first count of pseudo-labels m^ is uniform. Queue, counts and
teacher are in the state and kept identical on every process (features, labels and counts are
gathered). The mask takes the blended p', which replaces p^ in FixMatch (USB's port keeps the
linear confidence for the mask).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewlabels.algorithms.components.base import (
    Algorithm,
    Batch,
    SetupContext,
    register,
)
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.options import COUNT, FRACTION, LAMBDA_U, MOMENTUM, NON_NEGATIVE, POSITIVE, THRESHOLD, Option
from fewlabels.algorithms.components.parts import fit_buffers_to, similarity_logits
from fewlabels.algorithms.components.ramps import ramp_steps
from fewlabels.algorithms.components.result import step_result
from fewlabels.collectives import all_gather_cat
from fewlabels.losses import cross_entropy, masked_mean
from fewlabels.models.ema import EMA


@register
class DASO(Algorithm):
    name = "daso"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {
        "threshold": THRESHOLD,
        "lambda_u": LAMBDA_U,
        "lambda_align": Option(NON_NEGATIVE, "weight of the semantic alignment loss"),
        "t_proto": Option(POSITIVE, "temperature of the similarities to the class prototypes"),
        "t_dist": Option(POSITIVE, "temperature of the blend by pseudo-label distribution"),
        "queue_size": Option(COUNT, "labeled features kept per class for its prototype"),
        "dist_period": Option(COUNT, "steps over which the pseudo-labels are counted"),
        "warmup": Option(FRACTION, "part of the run trained as plain FixMatch first"),
        "ema_decay": Option(MOMENTUM, "EMA decay of the teacher that feeds the queue"),
    }

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, lambda_align: float = 1.0, t_proto: float = 0.05,
                 t_dist: float = 1.5, queue_size: int = 256, dist_period: int = 100, warmup: float = 0.02,
                 ema_decay: float = 0.999) -> None:
        super().__init__()
        self.threshold, self.lambda_u, self.lambda_align = threshold, lambda_u, lambda_align
        self.t_proto, self.t_dist, self.queue_size, self.dist_period = t_proto, t_dist, queue_size, dist_period
        self.warmup, self.ema_decay = warmup, ema_decay
        self.warmup_steps = 0
        self.teacher: EMA | None = None  # created in setup
        self.register_buffer("queue", torch.zeros(0))  # (K, Q, D), allocated at the first labeled features
        self.register_buffer("queued", torch.zeros(0, dtype=torch.long))  # features written per class (ring position = queued % Q)
        self.register_buffer("counts", torch.zeros(0))  # pseudo-labels per class in the last full period (m^ unnormalised)
        self.register_buffer("pending", torch.zeros(0))  # ... in the current period
        self.steps = 0  # extra state

    def setup(self, ctx: SetupContext) -> None:
        self.teacher = EMA(ctx.model, self.ema_decay)
        self.warmup_steps = ramp_steps(self.warmup, ctx.total_steps)
        self.queued = torch.zeros(ctx.num_classes, dtype=torch.long)
        self.counts, self.pending = torch.zeros(ctx.num_classes), torch.zeros(ctx.num_classes)

    def get_extra_state(self) -> dict[str, int]:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.steps = int(state["steps"])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        fit_buffers_to(self, state_dict, prefix, ("queue",))  # allocated at the first labeled batch
        super()._load_from_state_dict(state_dict, prefix, *args)

    def after_step(self, model: nn.Module) -> None:
        self.teacher.update(model)

    @torch.no_grad()
    def enqueue(self, feats: torch.Tensor, y: torch.Tensor) -> None:
        """Each class's newest Q labeled features (from every process) in its ring of the queue."""
        here = self.queued.device
        feats, y = all_gather_cat(feats.float()).to(here), all_gather_cat(y).to(here)
        k, q = len(self.queued), self.queue_size
        if self.queue.numel() == 0:
            self.queue = torch.zeros(k, q, feats.shape[1], device=here)
        for c in y.unique().tolist():
            new = feats[y == c][-q:]
            self.queue[c, (self.queued[c] + torch.arange(len(new), device=here)) % q] = new
            self.queued[c] += len(new)

    def prototypes(self) -> torch.Tensor | None:
        """Class means of the queue (K, D), or None while a class has no labeled feature yet."""
        if self.queue.numel() == 0 or bool((self.queued == 0).any()):
            return None
        filled = self.queued.clamp(max=self.queue_size)
        slots = torch.arange(self.queue_size, device=filled.device)[None, :] < filled[:, None]
        return (self.queue * slots[..., None]).sum(1) / filled[:, None]

    def blend_weights(self) -> torch.Tensor:
        """v_k = (m^_k / max m^)^(1 / T_dist), from the last full period's counts (the current one before that)."""
        counts = self.counts if self.counts.sum() > 0 else self.pending
        counts = counts if counts.sum() > 0 else torch.ones_like(counts)
        return (counts / counts.max()) ** (1.0 / self.t_dist)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l, unl = batch["labeled"]["weak"], batch["labeled"]["y"], batch["unlabeled"]
        with torch.no_grad():
            self.enqueue(self.teacher.module.train()(x_l)[1], y_l)
        (logits_l, logits_w, logits_s), (_, z_w, z_s) = joint_forward(model, x_l, unl["weak"], unl["strong"])
        protos = self.prototypes() if step >= self.warmup_steps else None
        semantic = None
        with torch.no_grad():
            probs = torch.softmax(logits_w.detach().float(), dim=-1)
            if protos is not None:
                protos = protos.to(z_w.device)
                semantic = torch.softmax(similarity_logits(z_w.detach(), protos, self.t_proto), dim=-1)
                v = self.blend_weights().to(probs.device)[probs.argmax(dim=-1)].unsqueeze(1)
                probs = (1 - v) * probs + v * semantic
            conf, pseudo = probs.max(dim=-1)
            mask = conf >= self.threshold
            self.count(pseudo)
        sup = self.supervised_ce(logits_l, y_l)
        unsup = masked_mean(cross_entropy(logits_s, pseudo, reduction="none"), mask)
        align = (cross_entropy(similarity_logits(z_s, protos, self.t_proto), semantic) if semantic is not None
                 else torch.zeros((), device=sup.device))
        return step_result(sup + self.lambda_u * unsup + self.lambda_align * align, sup=sup, unsup=unsup,
                           mask_rate=mask.float().mean(), align=align, pseudo_labels=pseudo, mask=mask)

    def count(self, pseudo: torch.Tensor) -> None:
        """Tally the pseudo-labels of every process; every ``dist_period`` steps the tally becomes m^."""
        self.pending += torch.bincount(all_gather_cat(pseudo).to(self.pending.device), minlength=len(self.pending)).float()
        self.steps += 1
        if self.steps % self.dist_period == 0:
            self.counts, self.pending = self.pending, torch.zeros_like(self.pending)
