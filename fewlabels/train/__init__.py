"""Training: preparation, the loop, EMA, optimizer and schedule, index streams, and the checkpoints it writes.

``RunFolder`` lives in ``fewlabels.storage`` (training writes through it); it is handed on here, where users import it.
"""

from fewlabels.storage import RunFolder
from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import Trainer, prepare, train
from fewlabels.train.resuming import load_checkpoint, resume
from fewlabels.train.signals import TrainingError, TrainingInterrupted

__all__ = ["RunFolder", "TrainConfig", "Trainer", "TrainingError", "TrainingInterrupted", "load_checkpoint", "prepare",
           "resume", "train"]
