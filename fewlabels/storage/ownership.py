"""What is ours in a run folder: the names of the files fewlabels writes there, and how they are told from a user's.

``--overwrite`` replaces, and a new run clears, only what these say is fewlabels' own: a run's own files by name
(they hold nothing a user would put there), evaluate's and report's outputs only when the file carries fewlabels'
mark (a user's file of that name is theirs). Everything else in the folder is the user's, and is never deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

from fewlabels.utils.provenance import recognise

RUN_FILES = ("config.yaml", "metrics.csv", "results.json", "last.pt")  # plus checkpoint-<step>.pt
CHECKPOINT_NAME = re.compile(r"checkpoint-\d+\.pt")
STRAY_NAME = re.compile(r"\..+\.tmp")  # an atomic write cut short by a kill
EVALUATION_FILE, REPORT_FILE = "evaluation.json", "report.html"  # what evaluate and report write into a run folder
EMBEDDINGS_FILE = "embeddings.npz"  # an encoder pipeline's teacher data, in its folder (foundation/pipeline.py), marked
OUTPUT_FILES = (EVALUATION_FILE, REPORT_FILE)
PLOTS_FOLDER = "report"  # report's plots, <name>.png for each name in PLOTS
# report's plots by name: here, below the report that draws them, so that the folder knows them as ours
PLOTS = ("accuracy", "loss", "pseudo_labels", "representation", "geometry", "confusion", "reliability", "mistakes")


def is_run_file(name: str) -> bool:
    """A file a run writes in its folder, which ``--overwrite`` may replace: RUN_FILES and checkpoint-<step>.pt."""
    return name in RUN_FILES or CHECKPOINT_NAME.fullmatch(name) is not None


def run_files(folder: Path, strays: bool = False) -> list[Path]:
    """The files a run wrote in ``folder`` (and, with ``strays``, its cut-short temp files): what ``--overwrite`` replaces.

    The one definition of a run's own files: a new run clears these and nothing else, so a user's file in the
    folder (a checkpoint-best.pt of their own too) is never deleted.
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.is_symlink() and p.is_file() and
                  (is_run_file(p.name) or (strays and STRAY_NAME.fullmatch(p.name) is not None)))


def contents(folder: Path) -> tuple[list[Path], list[Path]]:
    """(what fewlabels wrote in ``folder``, everything else): run files, strays, evaluate's and report's outputs (with
    report's plots, by the names report gives them); the rest (a user's file, another picture in report/, a folder, a
    link) is listed by its path here."""
    own: list[Path] = []
    other: list[Path] = []
    if not folder.is_dir():
        return own, other
    plots = {f"{name}.png" for name in PLOTS}
    for entry in sorted(folder.iterdir()):
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


def stale_outputs(folder: Path) -> list[Path]:
    """What evaluate and report wrote in ``folder`` about an earlier run (marked as fewlabels' own): a new run
    replaces it, so that no evaluation.json or report describes a model the folder no longer holds."""
    return [p for p in contents(folder)[0] if p.name in OUTPUT_FILES or p.parent.name == PLOTS_FOLDER]
