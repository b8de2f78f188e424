"""A training round started from the page: ``fewlabels train`` in a process of its own, writing a run folder.

The page's server never trains in its own process: a run is the CLI's ``train`` (the same loop, the same run
folder, the same checkpoints), so stopping it is the CLI's stop (SIGINT: the step ends, a checkpoint is written,
``train --resume`` continues it) and a crashed server leaves a resumable run behind. Progress is read back the
way a person would: the step and time left from the progress bar's last line in the run's log, the accuracy
from the run folder's ``metrics.csv`` (through ``RunFolder``, the one reader of run folders).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fewlabels.errors import FewLabelsError
from fewlabels.storage import RunFolder
from fewlabels.utils.io import atomic_write_json

LOG = "train.log"  # beside the run folder: RUN.train.log
LISTING = "labels.json"  # beside the run folder: the labels as the round was started, to find its held-out ones
ACCURACY_COLUMNS = ("val_acc", "test_acc")  # held-out accuracy, validation first (never chosen by test accuracy)
_BAR = re.compile(r"(\d+)/(\d+) \[([\d:]+)<([\d:?]+)")


@dataclass
class Settings:
    """What the page shows and the user may change before a round; the rest is train's defaults."""

    iterations: int = 500
    batch_size: int = 16
    algorithm: str = "fixmatch"
    val_per_class: int = 0

    def argv(self, dataset: Path, out: Path) -> list[str]:
        eval_every = max(1, self.iterations // 10)
        argv = ["train", "--dataset", str(dataset), "--out", str(out), "--iterations", str(self.iterations),
                "--batch-size", str(self.batch_size), "--algorithm", self.algorithm, "--eval-every", str(eval_every),
                "--checkpoint-every", str(eval_every)]
        if self.val_per_class:
            argv += ["--val-per-class", str(self.val_per_class)]
        return argv


def listing_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + "." + LISTING)


def _cli() -> list[str]:
    return [sys.executable, "-m", "fewlabels"]


class Round:
    """One run folder trained in the background; ``progress`` reads where it is."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.log = self.out.with_name(self.out.name + "." + LOG)
        self.listing = listing_path(self.out)
        self.process: subprocess.Popen | None = None
        self.stopped = False

    def start(self, dataset: Path, settings: Settings, samples: list[str] | None = None,
              labels: list[int] | None = None, classes: list[str] | None = None) -> None:
        """Train in the background; ``samples``/``labels``/``classes`` (the folder as ``train`` will read it) are
        kept beside the run, so the review can name the labels the run held out (a run folder records only counts)."""
        if samples is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.listing, {"classes": classes, "samples": samples, "labels": labels})
        self._spawn(settings.argv(dataset, self.out))

    def resume(self) -> None:
        if not RunFolder(self.out).last.is_file():
            raise FewLabelsError(f"{self.out} has no checkpoint yet, so there is nothing to resume; train again.")
        self._spawn(["train", "--resume", str(self.out)])

    def _spawn(self, argv: list[str]) -> None:
        if self.running:
            raise FewLabelsError("a round is training already; stop it or wait for it.")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stopped = False
        with open(self.log, "ab") as log:
            # a session of its own: a Ctrl-C in the server's terminal is the server's, the run stops from the page
            self.process = subprocess.Popen(_cli() + argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: the current step ends and a checkpoint is written; ``resume`` continues."""
        if self.running:
            self.stopped = True
            self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float | None = None) -> int | None:
        return None if self.process is None else self.process.wait(timeout)

    @property
    def finished(self) -> bool:
        return RunFolder(self.out).finished()

    def progress(self) -> dict:
        """Step, total, elapsed and left (from the log's last bar), accuracy so far (metrics.csv), state, last error."""
        out: dict = {"run": self.out.name, "state": self.state}
        text = self.log.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log.is_file() else ""
        bars = _BAR.findall(text)
        if bars:
            step, total, elapsed, left = bars[-1]
            out.update(step=int(step), total=int(total), elapsed=elapsed, left=left)
        folder = RunFolder(self.out)
        rows = folder.metrics()
        for column in ACCURACY_COLUMNS:
            points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column) not in (None, "")]
            if points:
                out.update(accuracy=points[-1][1], accuracy_name=column, curve=points)
                break
        if out["state"] == "failed":
            lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
            errors = [line for line in lines if line.startswith("fewlabels: error:")]
            out["error"] = (errors or lines or ["the run ended without results; see " + str(self.log)])[-1]
        return out

    @property
    def state(self) -> str:
        if self.running:
            return "stopping" if self.stopped else "training"
        if self.finished:
            return "finished"
        if self.process is None and not self.out.exists():
            return "new"
        if self.stopped or (self.process is None and RunFolder(self.out).last.is_file()):
            return "stopped"
        return "failed"
