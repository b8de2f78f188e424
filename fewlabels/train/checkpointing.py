"""What a run's checkpoint holds, how a Trainer takes it back, and how it reaches the run folder.

The format's rules (version, RNG states, what may be resumed) live in ``fewlabels.storage.checkpoint``; the
files in ``RunFolder``. This module is the Trainer's side: the layout of its state. ``trainer`` is
train/loop.py's ``Trainer`` (not imported: the loop imports this file).
"""

from __future__ import annotations

import time
from typing import Any

from fewlabels.storage.checkpoint import CHECKPOINT_FORMAT, rng_state, set_rng_state
from fewlabels.train.records import log_scalars, tensorboard_writer
from fewlabels.version import __version__


def checkpoint_state(trainer: Any) -> dict[str, Any]:
    """Everything needed to continue exactly: weights, optimizer, schedule, streams, RNGs, tallies."""
    ema = trainer.ema
    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "config": trainer.cfg.to_dict(),
        "classes": list(trainer.classes),
        "sample_shape": list(trainer.train_x.shape[1:]),
        "step": trainer.step,
        "model": trainer.model.state_dict(),
        "ema": {"module": ema.module.state_dict(), "updates": int(ema.updates), "decay": float(ema.decay)},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "algorithm": trainer.algorithm.state_dict(),
        "streams": trainer.batches.state_dict(),
        "rng": rng_state(),
        "rows": trainer.rows,
        "tally": trainer.tally,
        "timing": {"train_s": trainer.train_time, "eval_s": trainer.eval_time, "checkpoint_s": trainer.checkpoint_time},
        "init": trainer.init_record,
    }


def restore_state(trainer: Any, ckpt: dict[str, Any]) -> None:
    """Continue from ``checkpoint_state``'s output (already checked to belong to this config)."""
    trainer.model.load_state_dict(ckpt["model"])
    trainer.ema.module.load_state_dict(ckpt["ema"]["module"])
    trainer.ema.updates, trainer.ema.decay = int(ckpt["ema"]["updates"]), float(ckpt["ema"]["decay"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt["format"] == CHECKPOINT_FORMAT:
        trainer.algorithm.load_state_dict(ckpt["algorithm"])
    trainer.batches.load_state_dict(ckpt["streams"])
    set_rng_state(ckpt["rng"])
    trainer.step = int(ckpt["step"])
    trainer.rows = list(ckpt["rows"])
    trainer.tally = dict(ckpt["tally"])
    trainer.init_record = ckpt.get("init")
    timing = ckpt["timing"]
    trainer.train_time, trainer.eval_time, trainer.checkpoint_time = timing["train_s"], timing["eval_s"], timing["checkpoint_s"]


def save_checkpoint(trainer: Any) -> None:
    """Write the checkpoint; a fresh run's first one brings the run folder into being, resumable (``RunFolder.start``)."""
    t0 = time.time()
    folder, cfg = trainer.folder, trainer.cfg
    if trainer.started:
        folder.save_checkpoint(checkpoint_state(trainer), trainer.step, cfg.keep_checkpoints)
    else:
        folder.start(cfg.to_dict(), checkpoint_state(trainer), trainer.step, cfg.keep_checkpoints)
        trainer.started = True
        if trainer.rows:  # the rows that waited in memory for the folder
            folder.write_metrics(trainer.rows)
        trainer.board = tensorboard_writer(trainer.out)
        for row in trainer.rows:
            log_scalars(trainer.board, row, row["step"])
    trainer.checkpoint_time += time.time() - t0
