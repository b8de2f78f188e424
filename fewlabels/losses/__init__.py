"""Loss functions as pure functions of tensors; imports nothing else of fewlabels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against hard class indices (B,) or soft distributions (B, K)."""
    if targets.dim() == logits.dim():
        loss = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    else:
        loss = F.cross_entropy(logits, targets, reduction="none")
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
