"""Calibration: does a model that says "90% sure" turn out right 90% of the time?

Pure functions on NumPy/PyTorch arrays: ``probs`` is (N, K) class probabilities, ``y`` (N,)
true class indices. Confidence is the top probability and the prediction its class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_BINS = 15


def _confidence_and_correct(probs: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float64)
    t = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if p.ndim != 2 or t.ndim != 1 or len(p) != len(t):
        raise ValueError(f"probs must be (N, K) and y (N,), got {p.shape} and {t.shape}")
    if len(p) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return p.max(1), p.argmax(1) == t


def bin_index(confidence: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Equal-width bins over [0, 1], right-closed: bin b holds (b/B, (b+1)/B]; a confidence of 0 joins bin 0."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    edges = np.arange(bins + 1) / bins  # b / bins, correctly rounded: a confidence of exactly 0.4 lands below the 0.4 edge
    return np.clip(np.searchsorted(edges, np.asarray(confidence, dtype=np.float64), side="left") - 1, 0, bins - 1)


def reliability_bins(probs: Any, y: Any, bins: int = DEFAULT_BINS) -> list[dict[str, float | int | None]]:
    """Per bin: its edges, how many predictions fall in it, their mean confidence and their accuracy.

    The data behind a reliability diagram; empty bins have ``None`` confidence and accuracy.
    """
    conf, correct = _confidence_and_correct(probs, y)
    idx = bin_index(conf, bins)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        out.append({
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "count": n,
            "confidence": float(conf[sel].mean()) if n else None,
            "accuracy": float(correct[sel].mean()) if n else None,
        })
    return out


def expected_calibration_error(probs: Any, y: Any, bins: int = DEFAULT_BINS) -> float:
    """ECE = sum over bins of (share of samples in the bin) x |accuracy - mean confidence| (Guo et al., 2017).

    0 for a perfectly calibrated model; NaN when there are no samples.
    """
    table = reliability_bins(probs, y, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]))
