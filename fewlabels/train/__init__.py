"""Training: the loop, EMA, optimizer and schedule, index streams, run records."""

from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import Trainer, TrainingError, prepare, train

__all__ = ["TrainConfig", "Trainer", "TrainingError", "prepare", "train"]
