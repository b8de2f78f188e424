"""Datasets from user arrays: images (N,H,W), (N,H,W,C), (N,C,H,W) or features (N,D)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.errors import FewLabelsError

CHANNEL_COUNTS = (1, 3)
MAX_CLASSES = 100_000  # class indices beyond this are a data error, not a real label set


def as_numpy(a, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise FewLabelsError(f"{what} cannot be turned into an array: {exc}.") from None


def images_to_uint8_nchw(x: np.ndarray, what: str = "X") -> torch.Tensor:
    """Bring an image array into the (N, C, H, W) uint8 layout used everywhere."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in CHANNEL_COUNTS:
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in CHANNEL_COUNTS:
            raise FewLabelsError(
                f"{what} has shape {x.shape}: 4-d images need 1 or 3 channels, first (N,C,H,W) or last (N,H,W,C)."
            )
    else:
        raise FewLabelsError(f"{what} has shape {x.shape}; expected images (N,H,W[,C]) or features (N,D).")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise FewLabelsError(f"{what} has dtype {x.dtype}; images must be real numbers (uint8 0-255 or float 0-1).")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise FewLabelsError(f"{what} contains NaN or Inf values; clean or impute them first.")
    if x.min() < 0:
        raise FewLabelsError(f"{what} has negative pixel values; images must be in 0-1 (float) or 0-255.")
    scale = 255.0 if x.max() <= 1.0 else 1.0
    if x.max() * scale > 255.0 + 1e-6:
        raise FewLabelsError(f"{what} has pixel values above 255; images must be in 0-1 (float) or 0-255.")
    return torch.from_numpy(np.ascontiguousarray(np.rint(x * scale).clip(0, 255).astype(np.uint8)))


def features_to_float(x: np.ndarray, what: str = "X") -> torch.Tensor:
    if not np.issubdtype(x.dtype, np.number) or x.dtype == bool or np.issubdtype(x.dtype, np.complexfloating):
        raise FewLabelsError(f"{what} has dtype {x.dtype}; features must be real numbers.")
    x = x.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(i[0]) for i in np.nonzero(~finite))
        bad = "NaN" if np.isnan(x[row, col]) else "Inf"
        raise FewLabelsError(f"{what} row {row} holds {bad} in column {col}; clean or impute the missing values first.")
    return torch.from_numpy(np.ascontiguousarray(x))


def warn_constant_columns(x: torch.Tensor, what: str = "X") -> None:
    """Say which feature columns of the training pool never change: the model ignores them (``prepare.normalization_stats``)."""
    if x.dim() != 2 or len(x) < 2:
        return
    constant = (x == x[:1]).all(0).nonzero().squeeze(1).tolist()
    if constant:
        listed = ", ".join(map(str, constant[:10])) + (f" and {len(constant) - 10} more" if len(constant) > 10 else "")
        many = len(constant) > 1
        warnings.warn(f"Feature column{'s' if many else ''} {listed} of {what} {'are' if many else 'is'} the same in every "
                      f"row; the model ignores {'them' if many else 'it'}.", stacklevel=3)


def labels_to_int64(y, n: int, num_classes: int | None, what: str = "y") -> torch.Tensor:
    """Integer labels, -1 for unlabeled, checked against the row count and the class range."""
    y = as_numpy(y, what)
    if y.ndim != 1:
        raise FewLabelsError(f"{what} has shape {y.shape}; labels must be one value per row.")
    if len(y) != n:
        raise FewLabelsError(f"{'X' if what == 'y' else what.replace('y', 'X', 1)} has {n} rows but {what} has {len(y)}; they must match.")
    if np.issubdtype(y.dtype, np.floating) and y.size and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)  # 3.0 is class 3 (labels that went through a float column)
    if np.issubdtype(y.dtype, np.floating):
        row = int(np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0])
        raise FewLabelsError(f"{what} row {row} is {float(y[row])}; labels must be whole class indices (-1 for unlabeled).")
    if not np.issubdtype(y.dtype, np.integer):
        raise FewLabelsError(
            f"{what} has dtype {y.dtype}; labels must be integers (class index, -1 for unlabeled)."
        )
    y = y.astype(np.int64)
    if (y < -1).any():
        raise FewLabelsError(f"{what} contains {int(y.min())}; labels must be class indices >= 0, or -1 for unlabeled.")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise FewLabelsError(f"{what} contains {int(y.max())} but there are only {num_classes} classes.")
    return torch.from_numpy(y)


def from_arrays(
    X,
    y,
    classes: Sequence[str] | None = None,
    name: str = "arrays",
    what: str = "X",
) -> Dataset:
    """A dataset from arrays; 2-d X is taken as features, 3-d/4-d as images. ``what`` names X in messages."""
    x = as_numpy(X, what)
    label_name = "y" if what == "X" else what.replace("X", "y", 1)
    if x.ndim == 0 or len(x) == 0:
        raise FewLabelsError(f"{what} is empty; give at least one sample.")
    if 0 in x.shape[1:]:
        raise FewLabelsError(f"{what} has shape {x.shape}; every sample needs at least one feature or pixel.")
    if x.ndim == 2:
        xt = features_to_float(x, what)
    else:
        xt = images_to_uint8_nchw(x, what)
    yt = labels_to_int64(y, len(xt), len(classes) if classes is not None else None, label_name)
    if classes is None:
        if (yt < 0).all():
            raise FewLabelsError(f"{label_name} has no labeled rows (all -1); label at least one sample per class.")
        if int(yt.max()) >= MAX_CLASSES:
            raise FewLabelsError(f"{label_name} contains {int(yt.max())}; labels must be class indices below {MAX_CLASSES}.")
        classes = [str(c) for c in range(int(yt.max()) + 1)]
    return Dataset(xt, yt, list(classes), name)


def read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, without pickles; an unreadable file is one sentence."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:
        raise FewLabelsError(f"Cannot read {path} as an .npz archive ({type(exc).__name__}); save it with numpy.savez.") from None


def load_npz(path) -> DataSource:
    """Arrays from an ``.npz`` file: ``X`` and ``y`` (-1 = unlabeled), optional ``X_test``, ``y_test``, ``classes``."""
    from pathlib import Path

    path = Path(path)
    arrays = read_npz(path)
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise FewLabelsError(f"{path} has no array named '{missing[0]}'; it needs X and y (and optionally X_test, y_test, classes).")
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    train = from_arrays(arrays["X"], arrays["y"], classes, name=path.stem)
    test = None
    if "X_test" in arrays or "y_test" in arrays:
        if "X_test" not in arrays or "y_test" not in arrays:
            raise FewLabelsError(f"{path} has only one of X_test and y_test; give both or neither.")
        test = from_arrays(arrays["X_test"], arrays["y_test"], train.classes, name=path.stem + "-test", what="X_test")
        if test.x.shape[1:] != train.x.shape[1:]:
            raise FewLabelsError(f"{path}: X_test samples have shape {tuple(test.x.shape[1:])} but X has {tuple(train.x.shape[1:])}.")
        if (test.y < 0).any():
            raise FewLabelsError(f"{path}: y_test contains -1; test samples need labels.")
    return DataSource(train=train, test=test, hflip=False, origin=str(path))
