"""fewlabels: accurate classifiers from a few labels plus lots of unlabeled data."""

__version__ = "0.1.0"
