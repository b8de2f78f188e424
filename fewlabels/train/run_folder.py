"""A run folder: the one reader and writer of config.yaml, metrics.csv, results.json and the checkpoints.

Every command that opens a run (``load``, ``--resume``, evaluate/predict/report/export, and a
later run's ``--init`` or teacher) goes through ``RunFolder``, so each gets the same checks:
the checkpoint is whole and of a readable format, and config.yaml (which a user may edit)
still describes the run the checkpoint holds.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.train.checkpoint import ema_weights, read_checkpoint
from fewlabels.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable_dir
from fewlabels.utils.provenance import recognise

RUN_FILES = ("config.yaml", "metrics.csv", "results.json", "last.pt")  # plus checkpoint-<step>.pt
CHECKPOINT_NAME = re.compile(r"checkpoint-\d+\.pt")
STRAY_NAME = re.compile(r"\..+\.tmp")  # an atomic write cut short by a kill
EVALUATION_FILE, REPORT_FILE = "evaluation.json", "report.html"  # what evaluate and report write into a run folder
OUTPUT_FILES = (EVALUATION_FILE, REPORT_FILE)
PLOTS_FOLDER = "report"  # report's plots, <name>.png for each name in evaluate.report.PLOTS
FIRST_COLUMNS = ("step", "train_time_s", "lr", "loss")
# settings that make a checkpoint another run's when config.yaml disagrees with it
IDENTITY_SETTINGS = ("dataset", "model", "algorithm", "labels_per_class", "num_labels", "seed", "label_noise", "noise_type",
                     "imbalance_ratio")


def metric_columns(rows: list[dict]) -> list[str]:
    """The union of the rows' keys, in order of first appearance: every figure ever logged gets a column."""
    columns = dict.fromkeys(FIRST_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def is_run_file(name: str) -> bool:
    """A file a run writes in its folder, which ``--overwrite`` may replace: RUN_FILES and checkpoint-<step>.pt."""
    return name in RUN_FILES or CHECKPOINT_NAME.fullmatch(name) is not None


def resolve_run(path: str | os.PathLike) -> Path:
    """The run folder a path stands for: itself, or a pipeline folder's final stage (named in its pipeline.json)."""
    from fewlabels.train.pipeline_folder import MANIFEST, read_manifest

    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file() and not (path / "last.pt").exists():
        final = read_manifest(path).get("final_stage")  # checked there, for every reader of the folder
        if not final:
            raise FewLabelsError(f"the pipeline in {path} has not finished: no final model yet; continue it with "
                                 f"fewlabels pipeline --resume {path}.")
        return path / final
    return path


def build_model(source: Path, name: str, shape: tuple[int, ...], num_classes: int, state: dict[str, torch.Tensor]) -> nn.Module:
    """One of our models by name, with ``state`` loaded; a state that does not fit is one sentence naming ``source``."""
    from fewlabels import models

    model = models.get(name, shape, num_classes)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FewLabelsError(f"{source}: the saved weights do not fit model '{name}' ({first[:160]}).") from None
    return model


def folder_of(file: str | os.PathLike) -> RunFolder | None:
    """The run folder a checkpoint file sits in (last.pt or checkpoint-<step>.pt beside a config.yaml), else None.

    Such a file is read through its folder, so it gets the folder's checks (config.yaml must describe it).
    """
    file = Path(file)
    if file.is_file() and (file.name == "last.pt" or CHECKPOINT_NAME.fullmatch(file.name)) and \
            (file.parent / "config.yaml").is_file():
        return RunFolder(file.parent)
    return None


class RunFolder:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.source: Path = self.last  # the checkpoint file the last read came from

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    # ---- writing

    def run_files(self, strays: bool = False) -> list[Path]:
        """The files a run wrote here (and, with ``strays``, its cut-short temp files): what ``--overwrite`` replaces.

        The one definition of a run's own files: a new run clears these and nothing else, so a user's file in the
        folder (a checkpoint-best.pt of their own too) is never deleted.
        """
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if not p.is_symlink() and p.is_file() and
                      (is_run_file(p.name) or (strays and STRAY_NAME.fullmatch(p.name) is not None)))

    def contents(self) -> tuple[list[Path], list[Path]]:
        """(what fewlabels wrote here, everything else): run files, strays, evaluate's and report's outputs
        (with report's plots, by the names report gives them); the rest (a user's file, another picture in report/, a
        folder, a link) is listed by its path here."""
        from fewlabels.evaluate.report import PLOTS  # the names of report's plots

        own, other = [], []
        if not self.path.is_dir():
            return own, other
        plots = {f"{name}.png" for name in PLOTS}
        for entry in sorted(self.path.iterdir()):
            if entry.is_symlink():
                other.append(entry)
            elif entry.is_dir() and entry.name == PLOTS_FOLDER:
                for plot in sorted(entry.iterdir()):
                    ours = plot.name in plots and plot.is_file() and not plot.is_symlink() and recognise(plot)
                    (own if ours else other).append(plot)
            elif entry.is_file() and (is_run_file(entry.name) or STRAY_NAME.fullmatch(entry.name) or
                                      (entry.name in OUTPUT_FILES and recognise(entry))):  # the file says who wrote it
                own.append(entry)
            else:
                other.append(entry)
        return own, other

    def stale_outputs(self) -> list[Path]:
        """What evaluate and report wrote here about an earlier run (marked as fewlabels' own): a new run replaces
        it, so that no evaluation.json or report describes a model the folder no longer holds."""
        return [p for p in self.contents()[0] if p.name in OUTPUT_FILES or p.parent.name == PLOTS_FOLDER]

    def check_new(self, overwrite: bool) -> None:
        """Refuse, before any work, a folder that cannot be written or already holds a run or a pipeline.

        A run written beside a pipeline's pipeline.json would make the folder both (``resolve_run`` then takes the
        run, and the pipeline goes stale), so a pipeline is refused; with ``overwrite`` it is replaced whole when
        every file in the folder is fewlabels' own, which ``pipeline_folder.replaceable`` decides, for pipelines too.
        """
        from fewlabels.train.pipeline_folder import MANIFEST, holds_pipeline, replaceable

        check_writable_dir(self.path)
        if holds_pipeline(self.path):
            if not overwrite:
                raise FewLabelsError(f"{self.path} holds a pipeline ({MANIFEST}), and a run needs a folder of its own; "
                                     "choose another --out folder, or pass --overwrite to replace the pipeline.")
            replaceable(self.path, overwrite)  # a file of the user's in it is refused by name, before any work
            return
        held = bool(self.run_files())  # a resumable run too
        if held and not overwrite:
            raise FewLabelsError(f"{self.path} already holds a run; choose another --out folder or pass --overwrite.")

    def start(self, config: dict[str, Any], state: dict[str, Any], step: int, keep: int) -> None:
        """A fresh run's first checkpoint: clear what an earlier run or pipeline left (with --overwrite, which
        ``check_new`` required), then checkpoint, then config.

        Called at the first checkpoint, not before, and in this order, so that at every moment the folder holds
        no run or a resumable one (``--resume`` writes a missing config.yaml from the checkpoint): a run that dies
        before its first checkpoint leaves nothing, and a folder this call made is removed if the checkpoint fails.
        A replaced pipeline is said in one line, as ``pipeline --overwrite`` says it.
        """
        from fewlabels.train.pipeline_folder import holds_pipeline, replace, replaceable

        pipeline = replaceable(self.path, True) if holds_pipeline(self.path) else []  # checked again: nothing gone yet
        made = [d for d in (self.path, *self.path.parents) if not d.exists()]  # innermost first
        self.path.mkdir(parents=True, exist_ok=True)
        said = replace(self.path, pipeline)
        if said:
            from tqdm import tqdm

            tqdm.write(said)  # above a progress bar, on stdout
        for file in self.run_files(strays=True):
            file.unlink(missing_ok=True)
        for file in self.stale_outputs():
            file.unlink(missing_ok=True)
        try:
            self.save_checkpoint(state, step, keep)
        except BaseException:
            for folder in made:  # the folders this call made, if still empty
                if not any(folder.iterdir()):
                    folder.rmdir()
            raise
        self.write_config(config)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def remove_strays(self) -> None:
        """Temp files of a write cut short by a kill."""
        for stray in self.path.glob(".*.tmp"):
            stray.unlink(missing_ok=True)

    def write_metrics(self, rows: list[dict]) -> None:
        columns = metric_columns(rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.path / "results.json", results)

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> None:
        """Write checkpoint-<step>.pt atomically, point last.pt at it (a hard link), keep the newest ``keep``."""
        name = f"checkpoint-{step:08d}.pt"
        atomic_torch_save(self.path / name, state)
        self.point_last(self.path / name)
        for old in sorted(p for p in self.path.glob("checkpoint-*.pt") if CHECKPOINT_NAME.fullmatch(p.name))[:-keep]:
            old.unlink(missing_ok=True)

    def point_last(self, file: Path) -> None:
        """Make last.pt a hard link to ``file`` (same bytes, no second write), atomically."""
        link_tmp = self.path / f".last.pt.{os.getpid()}.tmp"
        link_tmp.unlink(missing_ok=True)
        os.link(file, link_tmp)
        os.replace(link_tmp, self.last)

    # ---- reading

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
