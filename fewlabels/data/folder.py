"""Image folders: root/<class>/* plus an optional root/unlabeled/*.

A ``train/`` + ``test/`` pair of such folders gives a test set too.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.data.resize import check_resize, fitted_size
from fewlabels.errors import FewLabelsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
UNLABELED = "unlabeled"
TRAIN, TEST = "train", "test"  # a folder holding both is a train/test pair, not two classes
RESERVED = (TRAIN, TEST, UNLABELED)  # folder names the reader gives a meaning of its own: never a class name
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _list_images(folder: Path) -> list[Path]:
    """The images anywhere under ``folder``: subfolders of a class folder are that class (as ``predict`` searches)."""
    files = []
    for p in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(folder).parts) or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise FewLabelsError(
                f"{p} is not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))}); move it out of the data folder."
            )
        files.append(p)
    return files


def _unreadable(path: Path, exc: Exception) -> FewLabelsError:
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError):
        return FewLabelsError(f"Image {path} is far too large to load safely; shrink it or remove it.")
    reason = "not a recognisable image" if isinstance(exc, UnidentifiedImageError) else type(exc).__name__
    return FewLabelsError(f"Cannot read image {path} ({reason}); the file is corrupt, replace or remove it.")


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """An image's (width, height) and mode from its header alone: what sizing the folder needs, without decoding it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (Image.DecompressionBombError, OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise _unreadable(path, exc) from None


def _open(path: Path):
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
        return img
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def _to_array(img, size: tuple[int, int], gray: bool) -> np.ndarray:
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float gray: scale, don't clip
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode != "F" or a.max() > 1.0 else 1.0
        img = Image.fromarray(np.rint(a.clip(0, peak) * (255.0 / peak)).astype(np.uint8), mode="L")
    img = img.convert("L" if gray else "RGB")
    if img.size != size:
        img = img.resize(size, Image.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if gray else a.transpose(2, 0, 1)


def load_files(
    paths: list[Path], image_size: tuple[int, int] | None = None, channels: int | None = None,
    side: int | None = None, shrink_only: bool = True,
) -> torch.Tensor:
    """Read image files into one (N,C,H,W) uint8 tensor, resizing to one common (width, height).

    Without ``image_size`` the most common size wins, its longer side brought to ``side``
    (see ``resize.fitted_size``); without ``channels`` the images are grayscale only if all of them are.
    """
    return _read(paths, *_plan(paths, image_size, channels, side, shrink_only))


def _plan(paths: list[Path], image_size: tuple[int, int] | None, channels: int | None, side: int | None,
          shrink_only: bool) -> tuple[tuple[int, int], int]:
    """The (width, height) and channels ``load_files`` gives the images, from their headers (nothing decoded)."""
    if image_size is None or channels is None:
        headers = [_header(p) for p in paths]
        if image_size is None:
            width, height = Counter(size for size, _ in headers).most_common(1)[0][0]
            height, width = fitted_size(height, width, side, shrink_only)
            image_size = (width, height)
        if channels is None:
            channels = 1 if all(mode in GRAY_MODES for _, mode in headers) else 3
    return image_size, channels


def _read(paths: list[Path], image_size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode and size the images one at a time into one array: memory holds the sized copy and a single original."""
    width, height = image_size
    x = np.empty((len(paths), channels, height, width), dtype=np.uint8)
    for i, path in enumerate(paths):
        x[i] = _to_array(_open(path), image_size, channels == 1)
    return torch.from_numpy(x)


def tree_files(root: Path, classes: list[str] | None = None,
               training: bool = True) -> tuple[list[Path], list[int], list[str]]:
    """The image files of a folder in the order training reads them (class folders, then unlabeled/), their labels
    (-1 for unlabeled) and the class names; ``classes`` checks the folder against a training set's classes.
    ``training=False`` accepts fewer than two classes (choosing what to label starts from none)."""
    if not root.is_dir():
        raise FewLabelsError(f"Image folder {root} does not exist or is not a folder.")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [d for d in subdirs if d != UNLABELED]
    if classes is None:
        classes = found
        if training and not classes:
            raise FewLabelsError(
                f"{root} has no class folders; put labeled images in {root}/<class name>/ (and unlabeled ones in {root}/{UNLABELED}/)."
            )
        if training and len(classes) < 2:
            raise FewLabelsError(f"{root} has only one class folder ({classes[0]}); a classifier needs at least two classes.")
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise FewLabelsError(f"{root} has class folders {unknown} that the training data does not have.")
    paths: list[Path] = []
    labels: list[int] = []
    for i, c in enumerate(classes):
        folder = root / c
        if not folder.is_dir():
            continue
        files = _list_images(folder)
        if not files:
            raise FewLabelsError(f"Class folder {folder} holds no images; add images or remove the folder.")
        paths += files
        labels += [i] * len(files)
    if (root / UNLABELED).is_dir():
        files = _list_images(root / UNLABELED)
        paths += files
        labels += [-1] * len(files)
    if not paths:
        raise FewLabelsError(f"{root} holds no images.")
    return paths, labels, classes


def training_root(root: Path) -> Path:
    """Where the training images of an image-folder dataset are: ``root/train`` of a train/test pair, else ``root``."""
    return root / TRAIN if (root / TRAIN).is_dir() and (root / TEST).is_dir() else root


def load(root: str | os.PathLike, image_size: tuple[int, int] | None = None, side: int | None = None,
         shrink_only: bool = True) -> DataSource:
    """An image folder; ``side`` (with ``shrink_only``) sizes the images as they are read, see ``resize.fitted_size``.

    Every file is listed, and the size the images get decided from their headers, before any image is decoded: a
    copy at that size which cannot fit in memory (``--image-size 4096``) is refused first (``resize.check_resize``).
    """

    root = Path(root)
    pair = (root / TRAIN).is_dir() and (root / TEST).is_dir()
    paths, labels, classes = tree_files(training_root(root))
    test_paths: list[Path] = []
    if pair:
        test_paths, test_labels, _ = tree_files(root / TEST, classes)
        if min(test_labels) < 0:
            raise FewLabelsError(f"{root / TEST} must not have an '{UNLABELED}' folder; test images need labels.")
    size, channels = _plan(paths, image_size, None, side, shrink_only)
    check_resize(len(paths) + len(test_paths), channels, (size[1], size[0]), reading=root)
    x, y = _read(paths, size, channels), torch.tensor(labels, dtype=torch.int64)
    test = None
    if pair:
        test = Dataset(_read(test_paths, size, channels), torch.tensor(test_labels, dtype=torch.int64), classes,
                       root.name + "-test")
    return DataSource(train=Dataset(x, y, classes, root.name), test=test, hflip=True, origin=str(root))
