"""How a run ends early: a stop signal (checkpoint kept, resumable) or a diverged loss."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any


class TrainingError(RuntimeError):
    """The run itself failed (diverged); the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; the step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int, out: Path | None, hint: str | None = None) -> None:
        """``hint`` replaces the advice on how to continue (a pipeline continues as a whole)."""
        self.signum, self.step = signum, step
        how = f", checkpoint saved; continue with: fewlabels train --resume {out}" if out is not None else ""
        if hint:
            how = f" {hint}"
        super().__init__(f"Stopped by {signal.Signals(signum).name} after step {step}{how}")


class StopSignals:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.signal = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
