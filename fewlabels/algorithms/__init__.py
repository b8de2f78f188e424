"""Algorithms by name: ``fewlabels.algorithms.get("fixmatch", threshold=0.9)``."""

from fewlabels.algorithms import fixmatch, supervised  # noqa: F401  (registers them)
from fewlabels.algorithms.base import Algorithm, Batch, get, get_class, names, options, register

__all__ = ["Algorithm", "Batch", "get", "get_class", "names", "options", "register"]
