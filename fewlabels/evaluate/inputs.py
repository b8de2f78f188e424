"""Data for a trained model: a labeled set to evaluate it on, or new inputs to predict.

Only reading and checking happens here; the model itself stays with the caller. Labels are
mapped to the model's classes *by name*, so a test folder may hold a subset of the classes
in any order, and a set with a class the model never saw is refused before any work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fewlabels import data as data_mod
from fewlabels.data.arrays import from_arrays, images_to_uint8_nchw
from fewlabels.data.folder import IMAGE_SUFFIXES, UNLABELED, load_files
from fewlabels.errors import FewLabelsError


@dataclass
class LabeledSet:
    """Samples (uint8 NCHW images or float features) with labels as indices into the model's classes."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    origin: str


def _is_image_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def _suffixes() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))


def _class_names(names: Sequence[str], classes: Sequence[str], where: str) -> None:
    unknown = [c for c in names if c not in classes]
    if unknown:
        shown = ", ".join(classes) if len(classes) <= 12 else ", ".join(classes[:12]) + ", ..."
        raise FewLabelsError(f"{where} has class '{unknown[0]}' that the model does not know; the model's classes are {shown}.")


def _image_size(sample_shape: Sequence[int], instead: str) -> tuple[tuple[int, int], int]:
    """PIL's (width, height) and the channel count of the model's images; a feature model cannot take image files."""
    if len(sample_shape) != 3:
        raise FewLabelsError(f"This model takes feature vectors of length {sample_shape[0]}, not images; "
                             f"give {instead} of shape (N, {sample_shape[0]}).")
    c, h, w = sample_shape
    return (int(w), int(h)), int(c)


def _from_folder(root: Path, classes: list[str], sample_shape: Sequence[int]) -> LabeledSet:
    size, channels = _image_size(sample_shape, "an .npz file with X_test, y_test")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != UNLABELED)
    if not subdirs:
        raise FewLabelsError(f"{root} has no class folders; evaluation needs labeled images in {root}/<class name>/.")
    _class_names([p.name for p in subdirs], classes, str(root))
    paths: list[Path] = []
    labels: list[int] = []
    for d in subdirs:
        files = _images_in(d)  # subfolders too, as training reads a class folder
        paths += files
        labels += [classes.index(d.name)] * len(files)
    if not paths:
        raise FewLabelsError(f"The class folders in {root} hold no images (looked for {_suffixes()}).")
    x = load_files(paths, size, channels)
    return LabeledSet(x, torch.tensor(labels, dtype=torch.int64), root.name, str(root))


def _from_npz(path: Path, classes: list[str], own: bool) -> LabeledSet:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise FewLabelsError(f"Cannot read {path} as an .npz archive ({type(exc).__name__}); save it with numpy.savez.") from None
    if "X_test" in arrays and "y_test" in arrays:
        xk, yk = "X_test", "y_test"
    elif own:
        raise FewLabelsError(f"{path} has no X_test/y_test, so the run has no test set; pass --dataset with labeled data.")
    elif "X" in arrays and "y" in arrays:
        xk, yk = "X", "y"
    else:
        raise FewLabelsError(f"{path} needs arrays X_test and y_test (or X and y, every row labeled).")
    y = arrays[yk]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise FewLabelsError(f"{path}: {yk} must be one integer label per row, got shape {y.shape} and dtype {y.dtype}.")
    if (y < 0).any():
        raise FewLabelsError(f"{path}: {yk} has unlabeled rows (-1); evaluation needs a label for every sample.")
    if "classes" in arrays:  # labels index the file's own class list: map them to the model's by name
        names = [str(c) for c in arrays["classes"]]
        _class_names(names, classes, str(path))
        if y.size and y.max() >= len(names):
            raise FewLabelsError(f"{path}: {yk} contains {int(y.max())} but the file lists only {len(names)} classes.")
        y = np.asarray([classes.index(n) for n in names], dtype=np.int64)[y] if y.size else y.astype(np.int64)
    what = xk
    ds = from_arrays(arrays[xk], y, classes, name=path.stem, what=what)
    return LabeledSet(ds.x, ds.y, ds.name, str(path))


def labeled_set(name: str, data_dir: str | os.PathLike | None, classes: Sequence[str], sample_shape: Sequence[int],
                own: bool = False) -> LabeledSet:
    """The labeled data to evaluate a model on.

    ``name`` is a built-in dataset (its test split), an image folder (its ``test/`` half when it has
    ``train/`` and ``test/``, otherwise its class folders), or an ``.npz`` (``X_test``/``y_test``, else
    fully labeled ``X``/``y``). ``own=True`` means "the run's own dataset": only a real test split will do,
    never the data it was trained on.
    """
    classes = list(classes)
    path = Path(name)
    if path.is_dir():
        split = (path / "train").is_dir() and (path / "test").is_dir()
        if own and not split:
            raise FewLabelsError(f"The run's image folder {path} has no test/ half, so the run has no test set; "
                                 "pass --dataset with a folder of labeled test images.")
        return _from_folder(path / "test" if split else path, classes, sample_shape)
    if path.suffix == ".npz" and path.is_file():
        return _from_npz(path, classes, own)
    if own and name not in data_mod.BUILTIN:
        raise FewLabelsError(f"The run was trained on '{name}', which is not a built-in dataset or a path found from here; "
                             "pass --dataset with the test data (a built-in name, an image folder or an .npz file).")
    source = data_mod.load(name, data_dir)
    test = source.test
    if test is None:
        raise FewLabelsError(f"{name} has no test split; pass --dataset with labeled test data.")
    _class_names(test.classes, classes, name)
    remap = torch.tensor([classes.index(c) for c in test.classes], dtype=torch.int64)
    return LabeledSet(test.x, remap[test.y], test.name, source.origin)


# ---- inputs to predict


def _images_in(folder: Path) -> list[Path]:
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if _is_image_file(p):
            files.append(p)
    return files


def image_paths(inputs: Sequence[str]) -> list[Path]:
    """Image files from folders (searched recursively, sorted) and single files, in the order given."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = _images_in(p)
            if not found:
                raise FewLabelsError(f"{p} holds no images (looked for {_suffixes()}, in subfolders too).")
            paths += found
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise FewLabelsError(f"{p} is not an image file ({_suffixes()}) or a .npy array.")
            paths.append(p)
        else:
            raise FewLabelsError(f"{p} does not exist; give an image folder, image files or a .npy array.")
    return paths


def image_batches(paths: Sequence[Path], sample_shape: Sequence[int], batch_size: int) -> Iterator[torch.Tensor]:
    """Read images a batch at a time, resized and converted to the model's size and channels as for training."""
    size, channels = _image_size(sample_shape, "a .npy array")
    for i in range(0, len(paths), batch_size):
        yield load_files(list(paths[i : i + batch_size]), size, channels)


def load_npy(path: str | os.PathLike, sample_shape: Sequence[int]) -> np.ndarray | torch.Tensor:
    """An .npy array of inputs: images (N,H,W), (N,H,W,C) or (N,C,H,W) become uint8 NCHW; features stay (N, D)."""
    path = Path(path)
    if not path.is_file():
        raise FewLabelsError(f"{path} does not exist; give an image folder, image files or a .npy array.")
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise FewLabelsError(f"Cannot read {path} as a .npy array ({type(exc).__name__}); save it with numpy.save.") from None
    if not isinstance(x, np.ndarray):
        raise FewLabelsError(f"{path} is an archive, not a single .npy array.")
    if len(sample_shape) == 3:
        c, h, w = sample_shape
        if x.ndim not in (3, 4):
            raise FewLabelsError(f"{path} has shape {x.shape} but this model takes a batch of images: (N, H, W), (N, H, W, C) "
                                 f"or (N, C, H, W), e.g. (N, {c}, {h}, {w}); for one image add a first axis of length 1.")
        if len(x) == 0:
            raise FewLabelsError(f"{path} holds no samples (shape {x.shape}).")
        return images_to_uint8_nchw(x, path.name)  # the whole array at once: one 0-1 vs 0-255 decision for all rows
    (d,) = sample_shape
    if x.ndim != 2:
        raise FewLabelsError(f"{path} has shape {x.shape} but this model takes feature vectors of shape (N, {d}).")
    if len(x) == 0:
        raise FewLabelsError(f"{path} holds no samples (shape {x.shape}).")
    return x
