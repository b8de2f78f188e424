"""Data sources, the labeled/unlabeled split, and a name -> loader registry."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from fewlabels.data import digits, fashion_mnist, folder
from fewlabels.data.arrays import from_arrays, load_npz
from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.data.split import Split, split
from fewlabels.errors import FewLabelsError

BUILTIN = {
    "fashion-mnist": "Fashion-MNIST, 60k/10k 28x28 grayscale, 10 classes (local IDX files)",
    "digits": "scikit-learn digits, 1,347/450 8x8 grayscale, 10 classes (bundled)",
}


def where(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """Where a built-in dataset would be loaded from, or None if it is not on this machine."""
    if name == "digits":
        return "bundled with scikit-learn"
    if name == "fashion-mnist":
        found = fashion_mnist.find(data_dir)
        return str(found) if found else None
    raise KeyError(name)


def load(name: str, data_dir: str | os.PathLike | None = None, side: int | None = None,
         shrink_only: bool = True) -> DataSource:
    """A built-in dataset by name, or an image folder or .npz by path.

    ``side``: a folder's images are read with their longer side brought to it (``resize.fitted_size``);
    other sources come at their own size (``resize.resize_images`` sizes arrays in memory).
    """
    if name == "fashion-mnist":
        return fashion_mnist.load(data_dir)
    if name == "digits":
        return digits.load()
    if Path(name).is_dir():
        return folder.load(name, side=side, shrink_only=shrink_only)
    if name.endswith(".npz") and Path(name).is_file():
        return load_npz(name)
    if "/" in name or "\\" in name or name.endswith(".npz"):
        raise FewLabelsError(f"Dataset path {name} does not exist; check the path (an image folder or an .npz file).")
    close = difflib.get_close_matches(name, list(BUILTIN), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise FewLabelsError(
        f"Unknown dataset '{name}': {hint}use one of {', '.join(BUILTIN)}, an image folder or an .npz file."
    )


__all__ = ["BUILTIN", "Dataset", "DataSource", "Split", "from_arrays", "load", "split", "where"]
