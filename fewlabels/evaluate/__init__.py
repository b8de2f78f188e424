"""Metrics on a model's predictions."""

from fewlabels.evaluate.metrics import accuracy, confusion_matrix, per_class_accuracy, predict_logits, summarize

__all__ = ["accuracy", "confusion_matrix", "per_class_accuracy", "predict_logits", "summarize"]
