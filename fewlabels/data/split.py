"""The labeled / validation / unlabeled split: stratified, seeded, identical on every machine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fewlabels.errors import FewLabelsError


@dataclass
class Split:
    labeled: np.ndarray  # indices into the training pool
    unlabeled: np.ndarray
    validation: np.ndarray

    def summary(self) -> str:
        return f"{len(self.labeled)} labeled, {len(self.unlabeled)} unlabeled, {len(self.validation)} validation"


EXPERIMENT_LABELS_PER_CLASS = 4  # fully labeled data with no count given: today's few-label experiment


def default_labels_per_class(y: torch.Tensor | np.ndarray, labels_per_class: int | None, num_labels: int | None,
                             uses_unlabeled: bool) -> tuple[int | None, str]:
    """The per-class count a run keeps when the user gave none, and why, in words for the run's first line.

    Data with unlabeled rows (-1) keeps every label given: the user made the split. Fully labeled
    data (a built-in benchmark, a folder without ``unlabeled/``) is an experiment: a method that
    learns from unlabeled data keeps ``EXPERIMENT_LABELS_PER_CLASS`` per class and uses the rest
    unlabeled; a supervised one keeps every label.
    """
    if labels_per_class is not None:
        return labels_per_class, f"{labels_per_class} labels per class kept"
    if num_labels is not None:
        return None, f"{num_labels} labels kept"
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if (y < 0).any():
        return None, "every label given"
    if uses_unlabeled:
        return EXPERIMENT_LABELS_PER_CLASS, (f"fully labeled data: {EXPERIMENT_LABELS_PER_CLASS} labels per class kept, "
                                             "the rest used unlabeled (--labels-per-class to change)")
    return None, "fully labeled data: every label used"


def describe_split(split: Split, y: torch.Tensor | np.ndarray, why: str) -> str:
    """One line: how many labeled samples (and per class), unlabeled and validation samples a run uses."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    counts = np.bincount(y[split.labeled], minlength=int(y.max()) + 1)
    counts = counts[counts > 0]
    per_class = f"{counts[0]} per class" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()} per class"
    val = f", {len(split.validation):,} validation" if len(split.validation) else ""
    return f"{len(split.labeled):,} labeled ({per_class}), {len(split.unlabeled):,} unlabeled{val}: {why}"


def _per_class_counts(num_labels: int, classes: np.ndarray, rng: np.random.Generator) -> dict[int, int]:
    base, extra = divmod(num_labels, len(classes))
    lucky = set(rng.permutation(classes)[:extra].tolist())
    return {int(c): base + (1 if c in lucky else 0) for c in classes}


def split(
    y: torch.Tensor | np.ndarray,
    labels_per_class: int | None = None,
    num_labels: int | None = None,
    val_per_class: int = 0,
    seed: int = 0,
    class_names: list[str] | None = None,
) -> Split:
    """Pick a stratified labeled subset and an optional validation subset; the rest is unlabeled.

    Rows already marked -1 are always unlabeled. With neither ``labels_per_class`` nor
    ``num_labels`` every labeled row stays labeled (the user made the split).
    NumPy's PCG64 generator makes the choice the same on every platform.
    """
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.int64)
    if labels_per_class is not None and num_labels is not None:
        raise FewLabelsError("Give labels_per_class or num_labels, not both.")
    if labels_per_class is not None and labels_per_class < 1:
        raise FewLabelsError(f"labels_per_class must be at least 1, got {labels_per_class}.")
    if num_labels is not None and num_labels < 1:
        raise FewLabelsError(f"num_labels must be at least 1, got {num_labels}.")
    if val_per_class < 0:
        raise FewLabelsError(f"val_per_class must be 0 or more, got {val_per_class}.")
    rng = np.random.default_rng(seed)
    present = np.unique(y[y >= 0])
    if len(present) == 0:
        raise FewLabelsError("The data has no labeled samples; at least one labeled sample per class is needed.")
    if num_labels is not None:
        if num_labels < len(present):
            raise FewLabelsError(f"num_labels={num_labels} is fewer than the {len(present)} classes; give at least one label per class.")
        wanted = _per_class_counts(num_labels, present, rng)
    elif labels_per_class is not None:
        wanted = {int(c): labels_per_class for c in present}
    else:
        wanted = {int(c): int((y == c).sum()) - val_per_class for c in present}
    labeled, validation = [], []
    for c in present:
        idx = np.flatnonzero(y == c)
        need = wanted[int(c)] + val_per_class
        if need > len(idx):
            name = class_names[c] if class_names and c < len(class_names) else str(c)
            raise FewLabelsError(
                f"Class '{name}' has {len(idx)} labeled samples but {wanted[int(c)]} labels"
                f"{f' + {val_per_class} validation' if val_per_class else ''} were requested; ask for fewer."
            )
        if wanted[int(c)] < 1:
            raise FewLabelsError(f"Class {c} has no labeled sample left after taking {val_per_class} for validation.")
        perm = rng.permutation(idx)
        labeled.append(perm[: wanted[int(c)]])
        validation.append(perm[wanted[int(c)] : need])
    labeled_idx = np.sort(np.concatenate(labeled))
    val_idx = np.sort(np.concatenate(validation))
    taken = np.zeros(len(y), dtype=bool)
    taken[labeled_idx] = True
    taken[val_idx] = True
    return Split(labeled_idx, np.flatnonzero(~taken), val_idx)
