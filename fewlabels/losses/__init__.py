"""Loss functions as pure functions of tensors; imports nothing else of fewlabels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or as it is when wider: losses leave bf16/fp16 autocast output, never drop float64.

    float64 runs are how the tests compare computations exactly (no CPU's SIMD rounding reaches their tolerance).
    """
    return t if t.dtype == torch.float64 else t.float()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against hard class indices (B,) or soft distributions (B, K).

    ``label_smoothing`` e: the target is ``(1 - e) * target + e / K`` (Szegedy et al. 2016), for the supervised terms
    of a run with ``--label-smoothing``; 0 leaves the arithmetic exactly as without it.
    """
    if targets.dim() == logits.dim():
        if label_smoothing:
            targets = targets * (1.0 - label_smoothing) + label_smoothing / logits.shape[-1]
        loss = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    else:
        loss = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values * mask`` over the whole batch, masked entries counting as zero.

    This is FixMatch's normalisation (by the unlabeled batch size, not by the number
    of confident samples), which keeps the loss scale stable as the mask rate grows.
    """
    return (values * mask.to(values.dtype)).mean()


def confident_pseudo_labels(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels, their confidence, and the mask ``confidence >= threshold``."""
    confidence, labels = probs.max(dim=-1)
    return labels, confidence, confidence >= threshold


def softmax_mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error between softmax(logits) and a target distribution, averaged over classes."""
    return (F.softmax(logits, dim=-1) - target).pow(2).mean(dim=-1)


def logit_adjusted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, log_prior: torch.Tensor, tau: float = 1.0,
                                 reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``logits + tau * log_prior`` ("Long-tail learning via logit adjustment", Menon et al. 2021).

    Training with the head classes' logits raised by their log prior makes the raw logits,
    used unadjusted at test time, estimate the class-balanced posterior. tau = 1 is the
    paper's default; ``log_prior`` is (K,), the log of the training label frequencies.
    """
    return cross_entropy(logits + tau * log_prior.to(logits.dtype), targets, reduction=reduction,
                         label_smoothing=label_smoothing)


def elr_regularizer(probs: torch.Tensor, targets_ema: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """mean_b log(1 - <p_b, t_b>) ("Early-Learning Regularization Prevents Memorization of Noisy Labels", Liu et al. 2020).

    ``probs`` are the model's softmax outputs (B, K), with gradient; ``targets_ema`` the
    per-sample running average of past predictions (B, K), a constant. Minimising it pulls
    each prediction toward its early-learning target, away from a memorised wrong label.
    1 - <p, t> is kept at ``eps`` or more so a perfect match does not give log(0).
    """
    inner = (probs * targets_ema.detach().to(probs.dtype)).sum(dim=-1)
    return torch.log((1.0 - inner).clamp(min=eps)).mean()


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(q)) per sample."""
    p = F.softmax(p_logits, dim=-1)
    return (p * (F.log_softmax(p_logits, dim=-1) - F.log_softmax(q_logits, dim=-1))).sum(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of softmax(logits) per sample (nats)."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)
