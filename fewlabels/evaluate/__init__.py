"""Metrics on a model's predictions."""

from fewlabels.evaluate.calibration import expected_calibration_error, reliability_bins
from fewlabels.evaluate.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    per_class_accuracy,
    per_class_f1,
    predict_logits,
    summarize,
)

__all__ = ["accuracy", "confusion_matrix", "expected_calibration_error", "macro_f1", "per_class_accuracy", "per_class_f1",
           "predict_logits", "reliability_bins", "summarize"]
