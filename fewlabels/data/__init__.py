"""Data sources, the labeled/unlabeled split, and the built-in datasets by name (``REGISTRY``; ``register`` adds one)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fewlabels.data import digits, fashion_mnist, folder
from fewlabels.data.arrays import from_arrays, load_npz
from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.data.split import Split, split
from fewlabels.errors import FewLabelsError

DataDir = str | os.PathLike | None


@dataclass(frozen=True)
class Builtin:
    """A built-in dataset: what it is, where this machine has it (None: nowhere), and its loader."""

    description: str
    where: Callable[[DataDir], str | None]
    load: Callable[[DataDir], DataSource]


def _fashion_mnist_where(data_dir: DataDir) -> str | None:
    found = fashion_mnist.find(data_dir)
    return str(found) if found else None


REGISTRY: dict[str, Builtin] = {}
BUILTIN: dict[str, str] = {}  # name -> description, for listings and help


def register(name: str, builtin: Builtin) -> None:
    """Make ``name`` a built-in dataset of every command and of ``load``."""
    REGISTRY[name] = builtin
    BUILTIN[name] = builtin.description


register("fashion-mnist", Builtin("Fashion-MNIST, 60k/10k 28x28 grayscale, 10 classes (local IDX files)",
                                  _fashion_mnist_where, fashion_mnist.load))
register("digits", Builtin("scikit-learn digits, 1,347/450 8x8 grayscale, 10 classes (bundled)",
                           lambda data_dir: "bundled with scikit-learn", lambda data_dir: digits.load()))


def where(name: str, data_dir: DataDir = None) -> str | None:
    """Where a built-in dataset would be loaded from, or None if it is not on this machine."""
    return REGISTRY[name].where(data_dir)  # KeyError for a name that is not built in


def load(name: str, data_dir: DataDir = None, side: int | None = None,
         shrink_only: bool = True) -> DataSource:
    """A built-in dataset by name, or an image folder or .npz by path.

    ``side``: a folder's images are read with their longer side brought to it (``resize.fitted_size``);
    other sources come at their own size (``resize.resize_images`` sizes arrays in memory).
    """
    if name in REGISTRY:
        return REGISTRY[name].load(data_dir)
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


__all__ = ["BUILTIN", "REGISTRY", "Builtin", "DataSource", "Dataset", "Split", "from_arrays", "load", "register", "split", "where"]
