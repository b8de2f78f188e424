"""Training: preparation, the loop, EMA, optimizer and schedule, index streams, checkpoints and run folders."""

from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import Trainer, prepare, train
from fewlabels.train.resume import load_checkpoint, resume
from fewlabels.train.run_folder import RunFolder
from fewlabels.train.signals import TrainingError, TrainingInterrupted

__all__ = ["RunFolder", "TrainConfig", "Trainer", "TrainingError", "TrainingInterrupted", "load_checkpoint", "prepare",
           "resume", "train"]
