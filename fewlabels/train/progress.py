"""The progress line of a run: a tqdm bar with the running loss and mask rate and the last evaluation's figures.

Also where a line for the user goes while it is drawn (above the bar, or on stderr without one).
"""

from __future__ import annotations

import sys
from typing import Any

from fewlabels.algorithms.components.result import MASK_RATE, TOTAL

PROGRESS_FIGURES = ("test_acc", "knn_acc", "emb_spread")  # the last evaluation's figures the bar shows


class Progress:
    """The bar of one run, from ``step`` to ``total`` steps; ``update`` after each step, ``close`` at the end."""

    def __init__(self, name: str, step: int, total: int) -> None:
        from tqdm import tqdm

        self.total = total
        self.bar = tqdm(total=total, initial=step, desc=name, dynamic_ncols=True)

    def update(self, step: int, tally: dict[str, float], rows: list[dict[str, Any]]) -> None:
        self.bar.update(step - self.bar.n)
        if step % 10 == 0 or step == self.total:
            self.bar.set_postfix(postfix(tally, rows), refresh=False)

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def postfix(tally: dict[str, float], rows: list[dict[str, Any]]) -> dict[str, str]:
    """The running loss and mask rate since the last evaluation, and the last evaluation's figures."""
    n = max(1, tally.get("_n", 0))
    post = {}
    if TOTAL in tally:
        post["loss"] = f"{tally[TOTAL] / n:.3f}"
    if MASK_RATE in tally:
        post["mask"] = f"{tally[MASK_RATE] / n:.2f}"
    last = rows[-1] if rows else {}
    for key in PROGRESS_FIGURES:
        if last.get(key) is not None:
            post[key] = f"{last[key]:.4f}"
    return post


def say(text: str, progress: Progress | None) -> None:
    """A line above the progress bar, or on stderr when there is none."""
    if progress is not None:
        progress.write(text)
    else:
        print(text, file=sys.stderr, flush=True)
