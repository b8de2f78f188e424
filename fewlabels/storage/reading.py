"""Reading a run folder: its checkpoint (checked whole and against config.yaml), results.json and metrics.csv.

Every command that opens a run (``load``, ``--resume``, evaluate/predict/report/export, and a later run's
``--init`` or teacher) reads it through these methods (``RunFolder`` has them), so each gets the same checks:
the checkpoint is whole and of a readable format, and config.yaml (which a user may edit) still describes the
run the checkpoint holds.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from fewlabels.errors import FewLabelsError
from fewlabels.storage.checkpoint import ema_weights, read_checkpoint
from fewlabels.storage.ownership import contents, run_files, stale_outputs

# settings that make a checkpoint another run's when config.yaml disagrees with it
IDENTITY_SETTINGS = ("dataset", "model", "algorithm", "labels_per_class", "num_labels", "seed", "label_noise", "noise_type",
                     "imbalance_ratio")


class RunReader:
    """A run folder, read: what a reader needs and nothing that writes (``RunFolder`` adds the writing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.source: Path = self.last  # the checkpoint file the last read came from

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    # ---- what is ours (ownership.py decides)

    def run_files(self, strays: bool = False) -> list[Path]:
        """The files a run wrote here (with ``strays``, its cut-short temp files too); see ``ownership.run_files``."""
        return run_files(self.path, strays)

    def contents(self) -> tuple[list[Path], list[Path]]:
        """(what fewlabels wrote here, everything else); see ``ownership.contents``."""
        return contents(self.path)

    def stale_outputs(self) -> list[Path]:
        """evaluate's and report's outputs about an earlier run; see ``ownership.stale_outputs``."""
        return stale_outputs(self.path)

    # ---- the records

    def checkpoint(self, file: Path | None = None) -> dict:
        """The last checkpoint (or ``file``, one of this folder's), checked whole and consistent with config.yaml.

        When last.pt is damaged or missing, the newest intact checkpoint-<step>.pt is used, with a one-line warning.
        """
        if self.path.exists() and not self.path.is_dir():
            raise FewLabelsError(f"{self.path} is a file; a run folder was expected.")
        self.source = Path(file) if file is not None else self.last
        try:
            ckpt = read_checkpoint(self.source if file is not None else self.path)  # a folder: "holds no last.pt"
        except FewLabelsError as damage:
            if file is not None:
                raise
            ckpt = self._intact_checkpoint(damage)
        self.check_config(ckpt["config"])
        return ckpt

    def _intact_checkpoint(self, damage: FewLabelsError) -> dict:
        """The newest checkpoint-<step>.pt that reads whole, in place of a damaged or missing last.pt; else ``damage``."""
        for file in sorted(self.path.glob("checkpoint-*.pt"), reverse=True):
            if self.last.exists() and file.samefile(self.last):  # the same bytes as the damaged last.pt
                continue
            try:
                ckpt = read_checkpoint(file)
            except FewLabelsError:
                continue
            what = "is damaged" if self.last.exists() else "is missing"
            warnings.warn(f"{self.last} {what}; using the intact {file.name} (step {ckpt['step']}) instead.", stacklevel=3)
            self.source = file
            return ckpt
        raise damage

    def config_on_disk(self) -> dict | None:
        """config.yaml as the user may have edited it; None when it is absent."""
        file = self.path / "config.yaml"
        if not file.is_file():
            return None
        try:
            on_disk = yaml.safe_load(file.read_bytes().decode("utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raise FewLabelsError(f"{file} is not valid YAML; restore it or delete it to use the checkpoint's settings.") from None
        if not isinstance(on_disk, dict):
            raise FewLabelsError(f"{file} must hold a mapping of settings; restore it or delete it.")
        return on_disk

    def check_config(self, saved: dict[str, Any]) -> None:
        """config.yaml must describe the run whose checkpoint sits beside it."""
        on_disk = self.config_on_disk()
        if on_disk is None:
            return
        differs = [k for k in IDENTITY_SETTINGS if on_disk.get(k) != saved.get(k)]
        if differs:
            k = differs[0]
            raise FewLabelsError(f"{self.path} mixes two runs: config.yaml has {k}={on_disk.get(k)!r} but {self.source.name} was "
                                 f"trained with {k}={saved.get(k)!r}; use the folder the checkpoint came from.")

    def finished(self) -> bool:
        """Whether the run wrote its results.json (it ran to its last step); ``results`` reads it."""
        return (self.path / "results.json").is_file()

    def results(self) -> dict[str, Any]:
        """results.json, or {} for a run that has not finished."""
        file = self.path / "results.json"
        if not file.is_file():
            return {}
        try:
            results = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise FewLabelsError(f"{file} is damaged (not valid JSON); restore it or delete it.") from None
        if not isinstance(results, dict):
            raise FewLabelsError(f"{file} is damaged (not a JSON object); restore it or delete it.")
        return results

    def metrics(self) -> list[dict[str, str]]:
        """metrics.csv's rows as strings, [] when there is none."""
        file = self.path / "metrics.csv"
        if not file.is_file():
            return []
        try:
            with open(file, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        except (csv.Error, UnicodeDecodeError):
            raise FewLabelsError(f"{file} is damaged (not a CSV table); restore it or delete it.") from None

    def final_model(self, file: Path | None = None) -> tuple[dict[str, Any], list[str], tuple[int, ...], dict[str, torch.Tensor]]:
        """What evaluating the run needs: its config, classes, sample shape and the EMA model's weights (of ``file``)."""
        ckpt = self.checkpoint(file)
        classes = [str(c) for c in ckpt["classes"]]
        shape = tuple(int(s) for s in ckpt["sample_shape"])
        return ckpt["config"], classes, shape, ema_weights(ckpt)
