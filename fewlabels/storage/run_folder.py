"""A run folder, written: a fresh run's first checkpoint, the next ones, config.yaml, metrics.csv and results.json.

``RunFolder`` is the one reader and writer of a run folder: it reads as ``RunReader`` does (reading.py) and adds
the writing here; which files are a run's own is ownership.py's, what a new run may replace replacing.py's. Training
writes through it; evaluation, selection, the API and the commands read through it.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import yaml

from fewlabels.errors import FewLabelsError
from fewlabels.storage.manifest import MANIFEST, holds_pipeline, read_manifest
from fewlabels.storage.ownership import CHECKPOINT_NAME
from fewlabels.storage.reading import RunReader
from fewlabels.storage.replacing import replace, replaceable
from fewlabels.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable_dir

FIRST_COLUMNS = ("step", "train_time_s", "lr", "loss")


def metric_columns(rows: list[dict]) -> list[str]:
    """The union of the rows' keys, in order of first appearance: every figure ever logged gets a column."""
    columns = dict.fromkeys(FIRST_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def resolve_run(path: str | os.PathLike) -> Path:
    """The run folder a path stands for: itself, or a pipeline folder's final stage (named in its pipeline.json)."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file() and not (path / "last.pt").exists():
        final = read_manifest(path).get("final_stage")  # checked there, for every reader of the folder
        if not final:
            raise FewLabelsError(f"the pipeline in {path} has not finished: no final model yet; continue it with "
                                 f"fewlabels pipeline --resume {path}.")
        return path / final
    return path


def folder_of(file: str | os.PathLike) -> RunFolder | None:
    """The run folder a checkpoint file sits in (last.pt or checkpoint-<step>.pt beside a config.yaml), else None.

    Such a file is read through its folder, so it gets the folder's checks (config.yaml must describe it).
    """
    file = Path(file)
    if file.is_file() and (file.name == "last.pt" or CHECKPOINT_NAME.fullmatch(file.name)) and \
            (file.parent / "config.yaml").is_file():
        return RunFolder(file.parent)
    return None


class RunFolder(RunReader):
    """A run folder to read (``RunReader``'s methods) and to write."""

    def check_new(self, overwrite: bool) -> None:
        """Refuse, before any work, a folder that cannot be written or already holds a run or a pipeline.

        A run written beside a pipeline's pipeline.json would make the folder both (``resolve_run`` then takes the
        run, and the pipeline goes stale), so a pipeline is refused; with ``overwrite`` it is replaced whole when
        every file in the folder is fewlabels' own, which ``replacing.replaceable`` decides, for pipelines too.
        """
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
