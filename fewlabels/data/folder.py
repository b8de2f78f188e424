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
from fewlabels.data.resize import fitted_size
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


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except Image.DecompressionBombError:
        raise FewLabelsError(f"Image {path} is far too large to load safely; shrink it or remove it.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = "not a recognisable image" if isinstance(exc, UnidentifiedImageError) else type(exc).__name__
        raise FewLabelsError(f"Cannot read image {path} ({reason}); the file is corrupt, replace or remove it.") from None


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
    images = [_open(p) for p in paths]
    if image_size is None:
        width, height = Counter(im.size for im in images).most_common(1)[0][0]
        height, width = fitted_size(height, width, side, shrink_only)
        image_size = (width, height)
    if channels is None:
        channels = 1 if all(im.mode in GRAY_MODES for im in images) else 3
    arrays = [_to_array(im, image_size, channels == 1) for im in images]
    return torch.from_numpy(np.stack(arrays))


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


def _read_tree(root: Path, image_size, channels, classes: list[str] | None, side: int | None = None,
               shrink_only: bool = True):
    paths, labels, classes = tree_files(root, classes)
    x = load_files(paths, image_size, channels, side, shrink_only)
    return x, torch.tensor(labels, dtype=torch.int64), classes


def training_root(root: Path) -> Path:
    """Where the training images of an image-folder dataset are: ``root/train`` of a train/test pair, else ``root``."""
    return root / TRAIN if (root / TRAIN).is_dir() and (root / TEST).is_dir() else root


def load(root: str | os.PathLike, image_size: tuple[int, int] | None = None, side: int | None = None,
         shrink_only: bool = True) -> DataSource:
    """An image folder; ``side`` (with ``shrink_only``) sizes the images as they are read, see ``resize.fitted_size``."""
    root = Path(root)
    test = None
    if (root / TRAIN).is_dir() and (root / TEST).is_dir():
        x, y, classes = _read_tree(root / TRAIN, image_size, None, None, side, shrink_only)
        size = (x.shape[3], x.shape[2])
        xt, yt, _ = _read_tree(root / TEST, size, x.shape[1], classes)
        if (yt < 0).any():
            raise FewLabelsError(f"{root / TEST} must not have an '{UNLABELED}' folder; test images need labels.")
        test = Dataset(xt, yt, classes, root.name + "-test")
    else:
        x, y, classes = _read_tree(root, image_size, None, None, side, shrink_only)
    return DataSource(train=Dataset(x, y, classes, root.name), test=test, hflip=True, origin=str(root))
