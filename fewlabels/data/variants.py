"""The data variants of an experiment, applied after the split: a long tail and label noise, and their record.

Order: (1) the stratified, seeded split of the training pool; (2) with ``imbalance_ratio`` > 1,
the long tail cut from the labeled and the unlabeled sets (``long_tail_split``); (3) with
``label_noise`` > 0, exactly round(rate * n) of the n labeled samples' labels flipped. Labels
of the validation set, the unlabeled pool's hidden labels (diagnostics only) and the test set
stay clean; the test set stays balanced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fewlabels.data.dataset import Dataset
from fewlabels.data.longtail import long_tail_indices
from fewlabels.data.noise import add_label_noise
from fewlabels.data.split import Split
from fewlabels.errors import FewLabelsError

# seed streams of the data variants, apart from the split's own (NumPy SeedSequence entropy (seed, stream))
LONG_TAIL_LABELED_STREAM, LONG_TAIL_UNLABELED_STREAM, NOISE_STREAM = 1, 2, 3


@dataclass
class Variant:
    """The split and the labels training sees once the variants are applied, and what was done."""

    split: Split
    labels: torch.Tensor  # the training pool's labels, noisy on the labeled set where asked
    record: dict[str, Any] = field(default_factory=dict)  # for results.json


def apply_variants(train: Dataset, split: Split, seed: int, imbalance_ratio: float = 1.0, label_noise: float = 0.0,
                   noise_type: str = "symmetric") -> Variant:
    """The long tail, then the label noise, on ``split`` of ``train``; see the module docstring for the order."""
    if imbalance_ratio > 1.0:
        split = long_tail_split(split, train.y, imbalance_ratio, seed, train.classes)
    labels, flipped = train.y, 0
    if label_noise > 0:
        noisy, mask = add_label_noise(train.y[split.labeled], label_noise, noise_type, len(train.classes),
                                      seed=(seed, NOISE_STREAM))
        labels = train.y.clone()
        labels[torch.as_tensor(split.labeled, dtype=torch.int64)] = noisy
        flipped = int(mask.sum())
    record = variant_record(train, split, imbalance_ratio, label_noise, noise_type, flipped)
    return Variant(split, labels, record)


def long_tail_split(split: Split, y: torch.Tensor, ratio: float, seed: int, classes: list[str]) -> Split:
    """The split with its labeled and unlabeled sets cut to the long-tailed profile; validation stays balanced.

    Order: (1) the usual stratified split of the balanced pool (labeled, validation, unlabeled);
    (2) the labeled set keeps round(n_max * ratio^(-c/(K-1))) of class c, n_max = its smallest
    class (labels_per_class when given); (3) the unlabeled set likewise by its hidden labels, with
    its own n_max; rows without a label (-1) all stay. Dropped samples are simply not used. The
    test set is not touched, so per-class test accuracy measures the tail.
    """
    y_np = y.numpy()
    k = len(classes)
    kept = long_tail_indices(y_np[split.labeled], ratio, k, seed=(seed, LONG_TAIL_LABELED_STREAM))
    labeled = split.labeled[kept]
    counts = np.bincount(y_np[labeled], minlength=k)
    if (counts == 0).any():
        c = int(np.flatnonzero(counts == 0)[0])
        raise FewLabelsError(f"imbalance_ratio={ratio:g} leaves class '{classes[c]}' without labels (the head class keeps "
                             f"{int(counts.max())}); ask for more labels per class or a smaller imbalance_ratio.")
    unlabeled = split.unlabeled
    hidden = y_np[unlabeled]
    if (hidden >= 0).any():
        present = np.unique(hidden[hidden >= 0])
        if len(present) < k:
            missing = classes[int(np.setdiff1d(np.arange(k), present)[0])]
            raise FewLabelsError(f"imbalance_ratio={ratio:g} needs unlabeled samples of every class to profile, but class "
                                 f"'{missing}' has none; ask for fewer labels or set imbalance_ratio=1.")
        unlabeled = unlabeled[long_tail_indices(hidden, ratio, k, seed=(seed, LONG_TAIL_UNLABELED_STREAM))]
    return Split(labeled, unlabeled, split.validation)


def variant_record(train: Dataset, split: Split, imbalance_ratio: float, label_noise: float, noise_type: str,
                   flipped: int) -> dict[str, Any]:
    """The record of what was applied: noise rate and realised flips, per-class labeled/unlabeled counts (clean labels)."""
    k = len(train.classes)
    y = train.y.numpy()
    hidden = y[split.unlabeled]
    return {
        "label_noise": {"rate": label_noise, "type": noise_type, "flipped": flipped, "of": len(split.labeled)},
        "class_counts": {
            "imbalance_ratio": imbalance_ratio,
            "labeled": dict(zip(train.classes, np.bincount(y[split.labeled], minlength=k).tolist())),
            "unlabeled": dict(zip(train.classes, np.bincount(hidden[hidden >= 0], minlength=k).tolist())),
            "unlabeled_without_label": int((hidden < 0).sum()),
        },
    }
