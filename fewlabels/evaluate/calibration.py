"""Calibration: does a model that says "90% sure" turn out right 90% of the time?

Pure functions on NumPy/PyTorch arrays: ``probs`` is (N, K) class probabilities, ``y`` (N,)
true class indices. Confidence is the top probability and the prediction its class. Temperature
scaling (one T fitted on held-out labels: the validation split, never the test set; without one, estimated
from the unlabeled pool, evaluate/pool_calibration.py) makes a run's probabilities honest; ``predict``,
``evaluate``, ``check-labels``, the report and the export divide the logits by the run's T.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

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


# ---- temperature scaling (Guo et al., 2017): one scalar T, logits / T, fitted by NLL on held-out labels


def nll(logits: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``y`` under softmax(logits / T), in float64."""
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, y.long()))


def search_temperature(loss: Callable[[float], float], low: float, high: float, steps: int) -> float:
    """The T in [low, high] minimizing ``loss(T)``, a loss convex in 1/T (a cross-entropy of softmax(logits / T)):
    a golden-section search on log T, which needs no learning rate."""
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(steps):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if loss(math.exp(c)) <= loss(math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The T in [low, high] that minimizes the held-out NLL of softmax(logits / T).

    T changes no prediction (the argmax is the same), only how sure the probabilities say it is.
    """
    z, t = logits.double(), y.long()
    if len(t) == 0:
        return 1.0
    return round(search_temperature(lambda temperature: nll(z, t, temperature), low, high, 80), 4)


def scaled_probs(logits: torch.Tensor, temperature: float | None) -> torch.Tensor:
    """softmax(logits / T) in float64; T None (not fitted) is 1."""
    return torch.softmax(logits.double() / (temperature or 1.0), dim=1)


def temperature_record(fit_logits: torch.Tensor, fit_y: torch.Tensor, fitted_on: str,
                       report_logits: torch.Tensor | None = None, report_y: torch.Tensor | None = None) -> dict[str, Any]:
    """T fitted on (``fit_logits``, ``fit_y``) and named by ``fitted_on``; ECE/NLL before and after on the report set.

    The report set (the test set, in results.json) is only scored with the T found, never used to find it.
    """
    temperature = fit_temperature(fit_logits, fit_y)
    out: dict[str, Any] = {"temperature": temperature, "temperature_fitted_on": fitted_on, "temperature_fit_n": len(fit_y)}
    if report_logits is not None and report_y is not None and len(report_y):
        out.update(scores(report_logits, report_y, temperature))
    return out


def calibration_figures(trainer: Any) -> dict[str, Any]:
    """results.json's temperature for a finished run (``trainer``: train/loop.py's Trainer, untyped).

    Fitted on the logits of the final EMA model as predict serves them (with the run's test-time augmentation):
    on the validation split's labels where there is one; otherwise estimated from the unlabeled pool
    (evaluate/pool_calibration.py), or left out (1) with a note saying why. The test set only scores the T found,
    and the probabilities served without one (ECE after = before), so every run reports the ECE it serves.
    """
    from fewlabels.evaluate.pool_calibration import pool_temperature
    from fewlabels.evaluate.tta import tta_logits

    split, test = trainer.p.split, trainer.p.source.test
    model, mode = trainer.ema.module, trainer.cfg.tta

    def served(x: torch.Tensor) -> torch.Tensor:
        return tta_logits(lambda v: trainer.predict(model, v), x, mode)

    shown = served(test.x) if test is not None else None
    if len(split.validation):
        val = torch.as_tensor(split.validation, dtype=torch.int64)
        return temperature_record(served(trainer.train_x[val]), trainer.train_y[val], "validation", shown,
                                  test.y if test is not None else None)
    out = pool_temperature(trainer, served)
    if shown is not None and len(test.y):  # no T served: the network's own probabilities are scored (after = before)
        out.update(scores(shown, test.y, out["temperature"] or 1.0))
    return out


def scores(logits: torch.Tensor, y: torch.Tensor, temperature: float) -> dict[str, float]:
    """ECE and NLL of the report set before and after T (the report set only scores it)."""
    return {"ece_before": expected_calibration_error(scaled_probs(logits, 1.0), y),
            "ece_after": expected_calibration_error(scaled_probs(logits, temperature), y),
            "nll_before": nll(logits, y), "nll_after": nll(logits, y, temperature)}


def served_reliability(run: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> dict[str, Any]:
    """The reliability diagram's data from the probabilities predict serves: the run's TTA, then its temperature.

    ``run``: a ``fewlabels.Run``. The report draws this, not the network's raw softmax, so the diagram shows what a
    user of predict, check-labels or the export gets.
    """
    from fewlabels.evaluate.tta import served

    serving = served(run)
    logits = torch.cat([serving.logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    probs = scaled_probs(logits, 1.0)
    return {"reliability": reliability_bins(probs, y), "ece": expected_calibration_error(probs, y),
            "temperature": serving.temperature, "tta": serving.mode}
