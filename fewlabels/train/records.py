"""What a run records about itself: the machine, TensorBoard scalars, and the results record."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from fewlabels.evaluate import accuracy, summarize
from fewlabels.evaluate.calibration import calibration_figures
from fewlabels.evaluate.representation import COLLAPSE_BELOW
from fewlabels.evaluate.tta import tta_figures
from fewlabels.version import __version__


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def tensorboard_writer(out: Path | None):
    """A TensorBoard writer in ``out/tensorboard`` when the optional ``tensorboard`` package is installed, else None."""
    if out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional extra is not installed: metrics.csv has the same numbers
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def log_scalars(board, row: dict[str, Any], step: int) -> None:
    if board is None:
        return
    for key, value in row.items():
        if key != "step" and isinstance(value, (int, float)):
            board.add_scalar(key, value, step)
    board.flush()


def results_record(trainer) -> dict[str, Any]:
    """results.json: the run's settings, sizes, times, machine, data variants and final EMA-model test metrics.

    Every figure of the last evaluation row (losses, diagnostics, monitors) is kept as ``final_<name>``.
    """
    cfg, split, source = trainer.cfg, trainer.p.split, trainer.p.source
    res: dict[str, Any] = {
        "fewlabels_version": __version__,
        "dataset": source.train.name,
        "data_origin": source.origin,
        "split_seed": cfg.seed,
        "num_labeled": len(split.labeled),
        "labels_per_class": cfg.labels_per_class,
        "num_unlabeled": len(split.unlabeled),
        "num_validation": len(split.validation),
        "model": cfg.model,
        "algorithm": cfg.algorithm,
        "algorithm_options": trainer.algorithm.hparams(),
        "iterations": trainer.step,
        "batch_size": cfg.batch_size,
        "uratio": cfg.uratio if trainer.algorithm.uses_unlabeled else 0,
        "wall_time_s": round(trainer.train_time + trainer.eval_time + trainer.checkpoint_time, 2),
        "train_time_s": round(trainer.train_time, 2),
        "eval_time_s": round(trainer.eval_time, 2),
        "checkpoint_time_s": round(trainer.checkpoint_time, 3),
        "machine": machine_info(trainer.device),
        "init": trainer.init_record,
        "augment": cfg.augment,
        "augment_choice": cfg.augment_choice,
        **trainer.precision.record(),  # train/precision.py: fp32 or bf16, and why
        **trainer.p.variants,
    }
    test = source.test
    if test is not None:
        res["test"] = summarize(trainer.predict(trainer.ema.module, test.x), test.y, trainer.classes)
        res["test_accuracy"] = res["test"]["accuracy"]  # final EMA model: the number to report
        res["test_accuracy_raw_model"] = trainer.rows[-1].get("test_acc_raw") if trainer.rows else None
        for name, logits in trainer.algorithm.inference_variants(trainer.ema.module, test.x).items():
            res[f"test_accuracy_{name}"] = accuracy(test.y, logits.argmax(1))  # e.g. SLA's aggregated inference
    res.update(tta_figures(trainer))  # evaluate/tta.py: the flip-averaged figure beside the plain one
    res.update(calibration_figures(trainer))  # evaluate/calibration.py: T fitted on the validation split
    if trainer.rows:
        for k, v in trainer.rows[-1].items():
            if k not in ("step", "train_time_s", "lr", "test_acc", "test_acc_raw") and v is not None:
                res[f"final_{k}"] = v
    warnings = run_warnings(res)
    if warnings:
        res["warnings"] = warnings
    return res


def run_warnings(res: dict[str, Any]) -> list[str]:
    """Sentences a user must read about the finished run (the faces print them)."""
    found = []
    spread = res.get("final_emb_spread")
    if spread is not None and spread < COLLAPSE_BELOW:
        found.append(f"The representation collapsed (embedding spread {spread:.3f}, below {COLLAPSE_BELOW}): nearly every "
                     "input maps to one point; lower the learning rate, or try another method.")
        res["collapsed"] = True
    return found
