"""A trained run against test data: streamed logits, the evaluation record, and the report's files.

The faces (``fewlabels evaluate`` / ``report``) load the run and print; the work is here. ``run``
is a ``fewlabels.Run`` (anything with ``logits``, ``classes``, ``config``, ``sample_shape``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.calibration import served_reliability
from fewlabels.evaluate.inputs import LabeledSet, labeled_set
from fewlabels.evaluate.report import build_report, evaluation_record, metric_floats
from fewlabels.storage import RunFolder
from fewlabels.storage.ownership import EVALUATION_FILE, PLOTS, PLOTS_FOLDER, REPORT_FILE
from fewlabels.utils.io import check_writable_dir, write_output


def stream_logits(run, batches: Iterable[torch.Tensor], total: int, quiet: bool = True, desc: str = "") -> torch.Tensor:
    """Logits for a stream of input batches, with a progress bar (to stderr) unless ``quiet``."""
    from tqdm import tqdm

    out = []
    # disable=None: no bar when stderr is not a terminal (logs, pipes), so an error stays the only line there
    with tqdm(total=total, desc=desc, unit="img" if run.is_image else "row", disable=True if quiet else None, dynamic_ncols=True,
              leave=False) as bar:
        for xb in batches:
            out.append(run.logits(xb))
            bar.update(len(xb))
    return torch.cat(out) if out else torch.empty((0, len(run.classes)))


@dataclass
class Evaluation:
    test: LabeledSet
    logits: torch.Tensor
    record: dict[str, Any]  # JSON-ready: what ``fewlabels evaluate`` writes


def default_evaluation_path(run_dir: str | os.PathLike) -> Path:
    """RUN_DIR/evaluation.json, or model.evaluation.json beside a model file (one name: a new pipeline's --overwrite
    knows it as ours)."""
    src = Path(run_dir)
    return src / EVALUATION_FILE if src.is_dir() else src.with_name(f"{src.stem}.{EVALUATION_FILE}")


def evaluate_run(run, run_dir: str | os.PathLike, dataset: str | None = None, data_dir: str | None = None,
                 batch_size: int = 512, quiet: bool = True) -> Evaluation:
    """The run's own test set (or ``dataset``), its logits, and the evaluation record naming run, data and model."""
    own = dataset is None
    name = run.config.dataset if own else dataset
    data_dir = data_dir if data_dir is not None else (run.config.data_dir if own else None)
    test = labeled_set(name, data_dir, run.classes, run.sample_shape, own=own)
    if len(test.y) == 0:
        raise FewLabelsError(f"{name} holds no labeled samples to evaluate on.")
    batches = (test.x[i : i + batch_size] for i in range(0, len(test.x), batch_size))
    logits = stream_logits(run, batches, len(test.x), quiet, "evaluate")
    record = evaluation_record(logits, test.y, run.classes)
    record = {"run": str(run_dir), "dataset": test.name, "data_origin": test.origin, "model": run.config.model,
              "algorithm": run.config.algorithm, **record}
    return Evaluation(test, logits, record)


def check_report_dir(run_dir: str | os.PathLike) -> Path:
    """A run folder whose report/ subfolder can be written; checked before the model is loaded."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FewLabelsError(f"report needs a run folder (with metrics.csv and last.pt), got {'the file ' if run_dir.exists() else ''}"
                             f"{run_dir}{'' if run_dir.exists() else ', which does not exist'}.")
    check_writable_dir(run_dir / PLOTS_FOLDER)
    return run_dir


@dataclass
class WrittenReport:
    html: Path
    size: int  # bytes of the HTML file
    png_dir: Path
    plots: list[str]
    warnings: list[str] = field(default_factory=list)  # what was left out and why, for the caller to show


def write_report(run, run_dir: str | os.PathLike, out: str | os.PathLike | None = None, dataset: str | None = None,
                 data_dir: str | None = None, quiet: bool = True, notes: Sequence[str] = (),
                 stages: Sequence[dict[str, str]] = ()) -> WrittenReport:
    """The HTML report of a run folder (default RUN_DIR/report.html) and its plots as PNGs in RUN_DIR/report/.

    Without the test set (and no ``dataset`` given) the report still comes, from results.json, with a note.
    """
    run_dir = check_report_dir(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    png_dir = run_dir / PLOTS_FOLDER

    folder = RunFolder(run_dir)  # the one reader of run folders
    results, rows = folder.results(), metric_floats(folder.metrics())
    config = run.config.to_dict()  # from last.pt: the settings the weights were trained with
    notes, warnings = list(notes), []
    if not results:
        notes.append("results.json is missing: the run has not finished; this reports its last checkpoint.")
    evaluation = None
    try:
        evaluation = evaluate_run(run, str(run_dir), dataset, data_dir, 512, quiet)
    except FewLabelsError as exc:
        if dataset is not None:
            raise
        notes.append("The test set could not be loaded, so the confusion matrix comes from results.json and the reliability "
                     f"diagram and the mistakes are left out (pass --dataset to include them): {exc}")
        warnings.append(str(exc))
    test = evaluation.test if evaluation is not None else None
    probs = torch.softmax(evaluation.logits.double(), dim=1) if evaluation is not None else None
    record = {**evaluation.record, "served": served_reliability(run, test.x, test.y)} if evaluation is not None else None
    html_text, pngs = build_report(run_dir.resolve().name, results, config, rows, record,
                                   test.x if test is not None else None, probs, test.y if test is not None else None, notes,
                                   stages)
    png_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:  # an earlier report's plot that this one no longer has must not linger
        if name not in pngs:
            (png_dir / f"{name}.png").unlink(missing_ok=True)
    for name, data in pngs.items():
        write_output(png_dir / f"{name}.png", data, "png")
    write_output(out, html_text, "html")
    return WrittenReport(out, len(html_text), png_dir, list(pngs), warnings)


__all__ = ["Evaluation", "WrittenReport", "check_report_dir", "default_evaluation_path", "evaluate_run", "stream_logits",
           "write_report"]
