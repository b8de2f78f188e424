"""Shared bench plumbing: machine record, atomic JSON, mean ± std."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# the consistency benchmark's settings, here so that report.py reads their headings without importing consistency.py
# (which imports report.py to rewrite BENCHMARKS.md)
CONSISTENCY_SETTINGS = {  # name: (dataset, labels per class, table heading)
    "digits5": ("digits", 5, "digits, 5/class"),
    "fmnist4": ("fashion-mnist", 4, "Fashion-MNIST, 4/class"),
    "fmnist25": ("fashion-mnist", 25, "Fashion-MNIST, 25/class"),
}


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": dt.date.today().isoformat()}


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def mean_cell(rows: list[dict], key: str, fmt: str, scale: float = 1.0) -> str:
    """The rows' ``key`` times ``scale``, averaged and formatted with ``fmt``, over the rows that have a number; "—" if none."""
    values = [scale * r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return format(statistics.fmean(values), fmt) if values else "—"


def pct_mean_std(rows: list[dict], key: str) -> str:
    """"89.12 ± 0.28": the rows' ``key`` (a fraction) in percent, mean ± std over the rows that have it; "—" if none."""
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "—"
    mu, sd = mean_std(values)
    return f"{100 * mu:.2f} ± {100 * sd:.2f}"


# what a finished run's results.json says about its predictions as served (flip TTA, then the fitted temperature)
SERVED_KEYS = ("tta", "test_accuracy_tta", "temperature", "temperature_fitted_on", "ece_before", "ece_after")


def served(res: dict) -> dict:
    """A run's served figures (issue 29): TTA accuracy, temperature and where it was fitted, test ECE before -> after."""
    return {k: res[k] for k in SERVED_KEYS if res.get(k) is not None}


def notes_lines(stem: str) -> list[str]:
    """The hand-written discussion in bench/notes/<stem>.md, as lines to append to a section (none if absent)."""
    notes = Path(__file__).resolve().parent / "notes" / f"{stem}.md"
    return ["", notes.read_text().strip()] if notes.exists() else []
