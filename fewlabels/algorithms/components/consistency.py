"""Consistency between views: the threshold family's shared step, joint forward passes, VAT's probe.

``pseudo_label_consistency`` is the step FixMatch, FlexMatch, FreeMatch, SoftMatch and SAA share;
``thresholded_consistency`` its unlabeled half, for algorithms with a forward pass of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import cross_entropy, kl_divergence, masked_mean

Weigh = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]  # probs (B, K), index -> per-sample weight


def joint_forward(model: nn.Module, *inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One forward pass over several batches (BatchNorm sees them together), split back: logits, features."""
    logits, feats = model(torch.cat(inputs))
    sizes = [len(x) for x in inputs]
    return list(logits.split(sizes)), list(feats.split(sizes))


def pseudo_label_consistency(model: nn.Module, batch: dict, weigh: Weigh, lambda_u: float, temperature: float = 1.0,
                             align: Callable[[torch.Tensor], torch.Tensor] | None = None, label_smoothing: float = 0.0,
                             ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The step the threshold family shares (FixMatch, FlexMatch, FreeMatch, SoftMatch).

    One joint forward of labeled-weak, unlabeled-weak and unlabeled-strong; hard pseudo-labels
    from the weak view (optionally aligned), without gradient; each unlabeled sample weighted by
    ``weigh(probs, index)`` (a threshold strategy); cross-entropy of the strong view against them.
    Returns the loss dict plus the strong-view logits and the weights, for extra terms.
    """
    x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
    unl = batch["unlabeled"]
    (logits_l, logits_weak, logits_strong), _ = joint_forward(model, x_l, unl["weak"], unl["strong"])
    unsup, pseudo, weight = thresholded_consistency(logits_weak, logits_strong, weigh, unl.get("index"), temperature, align)
    sup = cross_entropy(logits_l, y_l, label_smoothing=label_smoothing)  # the labeled term only (the algorithm's)
    out = step_result(sup + lambda_u * unsup, sup=sup, unsup=unsup, mask_rate=weight.float().mean(),
                      pseudo_labels=pseudo, mask=weight >= 0.5)
    return out, logits_strong, weight


def thresholded_consistency(logits_weak: torch.Tensor, logits_strong: torch.Tensor, weigh: Weigh,
                            index: torch.Tensor | None = None, temperature: float = 1.0,
                            align: Callable[[torch.Tensor], torch.Tensor] | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unlabeled half of ``pseudo_label_consistency``, for algorithms with their own forward pass (SLA-FixMatch).

    Hard pseudo-labels from the weak view's logits (optionally aligned), without gradient; each
    sample weighted by ``weigh(probs, index)``; the weighted cross-entropy of the strong view
    against them, normalised by the whole unlabeled batch. Returns (loss, pseudo-labels, weights).
    """
    with torch.no_grad():
        probs = torch.softmax(logits_weak.detach().float() / temperature, dim=-1)
        if align is not None:
            probs = align(probs)
        pseudo = probs.argmax(dim=-1)
        weight = weigh(probs, index)
    unsup = masked_mean(cross_entropy(logits_strong, pseudo, reduction="none"), weight)
    return unsup, pseudo, weight


@contextmanager
def bn_stats_frozen(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave BatchNorm running statistics alone (guessing, adversarial probes)."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def vat_perturbation(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, xi: float = 1e-3, eps: float = 6.0,
                     power_iterations: int = 1, gen: torch.Generator | None = None) -> torch.Tensor:
    """The virtual adversarial direction r_adv = eps * d / ||d||, d found by power iteration.

    Label-free: it maximises KL(p(x) || p(x + r)) around the model's own prediction.
    BatchNorm running statistics are not updated by the probing passes. The paper's xi = 1e-6
    is lost to float32 rounding (the probe's direction comes out nearly random), hence 1e-3.
    """
    def unit(v: torch.Tensor) -> torch.Tensor:
        flat = v.flatten(1)
        return (flat / (flat.norm(dim=1, keepdim=True) + 1e-12)).view_as(v)

    target = logits.detach()
    d = unit(torch.randn(x.shape, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device))
    with bn_stats_frozen(model):
        for _ in range(power_iterations):
            d = (xi * d).requires_grad_(True)
            adv_logits, _ = model(x.detach() + d)
            dist_ = kl_divergence(target, adv_logits).mean()
            (grad,) = torch.autograd.grad(dist_, d)
            d = unit(grad.detach())
    return eps * d
