"""Accuracy, per-class accuracy, confusion matrix, and batched prediction."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: str | torch.device = "cpu",
                   channels_last: bool = False) -> torch.Tensor:
    """Logits for all of ``x`` in eval mode, batch by batch; the model's mode is restored."""
    return predict_outputs(model, x, batch_size, device, channels_last, features=False)[0]


@torch.no_grad()
def predict_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: str | torch.device = "cpu",
                    channels_last: bool = False, features: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and (with ``features``) the backbone's features for all of ``x``, in eval mode, on the CPU as float32."""
    was_training = model.training
    model.eval()
    logits_out, feats_out = [], []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, non_blocking=True)
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        logits, feats = model(xb)
        logits_out.append(logits.float().cpu())
        if features:
            feats_out.append(feats.float().cpu())
    model.train(was_training)
    cat = (lambda parts: torch.cat(parts) if parts else torch.empty(0))
    return cat(logits_out), (cat(feats_out) if features else None)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted ones."""
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    return int((y_true == y_pred).sum()) / len(y_true) if len(y_true) else float("nan")  # exact, not float32


def per_class_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> list[float]:
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    support = cm.sum(1)
    return [float(cm[c, c] / support[c]) if support[c] > 0 else float("nan") for c in range(num_classes)]


def summarize(logits: torch.Tensor, y_true: torch.Tensor, classes: list[str]) -> dict:
    pred = logits.argmax(1)
    k = len(classes)
    return {
        "accuracy": accuracy(y_true, pred),
        "per_class_accuracy": dict(zip(classes, per_class_accuracy(y_true, pred, k))),
        "confusion_matrix": confusion_matrix(y_true, pred, k).tolist(),
        "n": len(y_true),
    }


def per_class_f1(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> list[float]:
    """F1 = 2TP / (2TP + FP + FN) per class; NaN for a class that is neither present nor predicted."""
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diag()
    denom = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    return [float(2 * tp[c] / denom[c]) if denom[c] > 0 else float("nan") for c in range(num_classes)]


def macro_f1(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``y_true`` or ``y_pred``.

    Unlike accuracy it gives a rare class the same weight as a common one, so a model that
    ignores a class cannot hide behind the others.
    """
    scores = [s for s in per_class_f1(y_true, y_pred, num_classes) if s == s]
    return sum(scores) / len(scores) if scores else float("nan")
