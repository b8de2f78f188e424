"""Datasets with a known answer, for checking the analysis (tests) and the benchmark.

- ``rotated_digits``: scikit-learn's digits without 6 and 9, each image turned by a random multiple
  of 90 degrees (seeded): every quarter turn is a symmetry of the data and keeps the label.
- ``mirror_pairs``: two classes that are mirror images of each other (chiral digits as drawn, and
  other chiral digits mirrored): the data is symmetric under hflip, but hflip swaps the classes.
"""

from __future__ import annotations

import numpy as np
import torch

from fewlabels.data import Dataset, DataSource
from fewlabels.data import digits as digits_mod

CHIRAL = (2, 3, 4, 5, 7)  # digits whose mirror image is no digit


def rotated_digits(seed: int = 0) -> DataSource:
    src = digits_mod.load()
    keep_classes = [c for c in range(10) if c not in (6, 9)]
    remap = {c: i for i, c in enumerate(keep_classes)}
    rng = np.random.default_rng(seed)

    def make(ds: Dataset, name: str) -> Dataset:
        keep = torch.tensor([int(v) in remap for v in ds.y])
        x, y = ds.x[keep], ds.y[keep]
        turns = torch.from_numpy(rng.integers(0, 4, len(x)))
        out = x.clone()
        for t in range(1, 4):
            sel = turns == t
            out[sel] = torch.rot90(x[sel], t, dims=(2, 3))
        return Dataset(out, torch.tensor([remap[int(v)] for v in y]), [str(c) for c in keep_classes], name)

    return DataSource(make(src.train, "rotated-digits"), make(src.test, "rotated-digits-test"), hflip=False,
                      origin="scikit-learn digits without 6 and 9, turned by random multiples of 90 degrees")


def mirror_pairs(seed: int = 0) -> DataSource:
    src = digits_mod.load()
    rng = np.random.default_rng(seed)

    def make(ds: Dataset, name: str) -> Dataset:
        idx = np.flatnonzero(np.isin(ds.y.numpy(), CHIRAL))
        idx = rng.permutation(idx)
        y = torch.from_numpy((np.arange(len(idx)) % 2).astype(np.int64))
        x = ds.x[torch.from_numpy(idx)].clone()
        x[y == 1] = x[y == 1].flip(-1)
        return Dataset(x, y, ["as drawn", "mirrored"], name)

    return DataSource(make(src.train, "mirror-pairs"), make(src.test, "mirror-pairs-test"), hflip=False,
                      origin="chiral scikit-learn digits as drawn and mirrored, one class each")


def save_npz(source: DataSource, path: str) -> None:
    """As an .npz that ``fewlabels train --dataset PATH`` reads (X, y, X_test, y_test, classes)."""
    np.savez(path, X=source.train.x.numpy(), y=source.train.y.numpy(), X_test=source.test.x.numpy(),
             y_test=source.test.y.numpy(), classes=np.array(source.train.classes))
