"""Training: the loop, EMA, optimizer and schedule, index streams, run records."""

from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import Trainer, TrainingError, TrainingInterrupted, load_checkpoint, prepare, resume, train

__all__ = ["TrainConfig", "Trainer", "TrainingError", "TrainingInterrupted", "load_checkpoint", "prepare", "resume", "train"]
