"""scikit-learn's bundled 8x8 digits as 1x8x8 uint8 images with a fixed test split."""

from __future__ import annotations

import numpy as np
import torch

from fewlabels.data.dataset import Dataset, DataSource

TEST_FRACTION = 0.25
TEST_SPLIT_SEED = 20240101  # fixed: the test set never depends on the run's seed


def load() -> DataSource:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(TEST_SPLIT_SEED)
    test_mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test_mask[rng.permutation(idx)[: int(round(len(idx) * TEST_FRACTION))]] = True
    classes = [str(c) for c in range(10)]
    return DataSource(
        train=Dataset(torch.from_numpy(x[~test_mask]), torch.from_numpy(y[~test_mask]), classes, "digits"),
        test=Dataset(torch.from_numpy(x[test_mask]), torch.from_numpy(y[test_mask]), classes, "digits-test"),
        hflip=False,  # a mirrored 2 is not a 2
        origin="scikit-learn (bundled)",
    )
