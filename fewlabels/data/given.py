"""Data as a user hands it to ``fit`` or ``pipeline``: a name or path, a DataSource or Dataset, or arrays X, y."""

from __future__ import annotations

import os
from typing import Any

from fewlabels import data as data_mod
from fewlabels.data.arrays import from_arrays
from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.errors import FewLabelsError


def given_test_set(test: Any, train: Dataset) -> Dataset:
    """A test set given as a Dataset or a pair (X_test, y_test), checked against the training data."""
    if isinstance(test, Dataset):
        ds = test
    elif isinstance(test, (tuple, list)) and len(test) == 2:
        ds = from_arrays(test[0], test[1], train.classes, name="test")
    else:
        raise FewLabelsError("test must be a Dataset or a pair (X_test, y_test).")
    if ds.sample_shape != train.sample_shape:
        raise FewLabelsError(f"test samples have shape {ds.sample_shape} but training samples have {train.sample_shape}.")
    if (ds.y < 0).any():
        raise FewLabelsError("test labels contain -1; every test sample needs a label.")
    if ds.num_classes != train.num_classes:
        raise FewLabelsError(f"test has {ds.num_classes} classes but the training data has {train.num_classes}.")
    return ds


def given_source(data: Any, y: Any, data_dir: str | None) -> tuple[DataSource, str]:
    """Whatever ``fit`` was given, as a DataSource plus a name for the run record."""
    if isinstance(data, (str, os.PathLike)):
        if y is not None:
            raise FewLabelsError("y goes with array data only; a dataset name or folder brings its own labels.")
        return data_mod.load(str(data), data_dir), str(data)
    if isinstance(data, (DataSource, Dataset)):
        if y is not None:
            raise FewLabelsError(f"y goes with array data only; a {type(data).__name__} brings its own labels.")
        if isinstance(data, DataSource):
            return data, data.train.name
        # A horizontal flip keeps the label of a photo but not of a digit or a letter: only flip when asked (hflip=True).
        return DataSource(data, None, hflip=False, origin="Dataset given to fit()"), data.name
    if y is None:
        raise FewLabelsError("y is required with array data: one label per row, -1 for unlabeled rows.")
    return DataSource(from_arrays(data, y), None, hflip=False, origin="arrays given to fit()"), "arrays"
