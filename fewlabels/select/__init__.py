"""Which samples to label next (``suggest``) and which given labels to doubt (``check_labels``).

An analysis beside evaluation: it reads embeddings and predictions and returns tables; training
never imports it. ``strategies`` and ``label_check`` hold the math on plain arrays, ``pool`` finds
the arrays for a dataset or run, ``rounds`` writes picks and merges new labels back.
"""

from fewlabels.select.label_check import check_labels
from fewlabels.select.strategies import STRATEGIES, SWITCH_PER_CLASS, select
from fewlabels.select.suggestion import check_run, suggest

__all__ = ["STRATEGIES", "SWITCH_PER_CLASS", "check_labels", "check_run", "select", "suggest"]
