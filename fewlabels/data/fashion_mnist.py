"""Fashion-MNIST from the four standard IDX files, found locally and validated."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from fewlabels.data.dataset import Dataset, DataSource
from fewlabels.errors import FewLabelsError

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SUBDIRS = ("", "fashion-mnist", "fashion_mnist", "FashionMNIST", "FashionMNIST/raw")
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist) or put the four IDX files "
    "in a folder and pass it with --data-dir or $FEWLABELS_DATA"
)
IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: explicit, $FEWLABELS_DATA, the user cache, Debian's."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("FEWLABELS_DATA"):
        roots.append(Path(os.environ["FEWLABELS_DATA"]))
    roots.append(Path.home() / ".cache" / "fewlabels")
    roots.append(Path("/usr/share/datasets"))
    return roots


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first folder holding all four files, or None; an explicit ``data_dir`` is the only place looked."""
    for root in [Path(data_dir)] if data_dir else search_roots():
        for sub in SUBDIRS:
            folder = root / sub if sub else root
            if all(_find_file(folder, stem) for stem in FILES.values()):
                return folder
    return None


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file (raw or gzip), checking the magic number and the payload size."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise FewLabelsError(f"Cannot read {path}: {exc}; the file is corrupt, re-download it.") from None
    if len(raw) < 8:
        raise FewLabelsError(f"{path} is too short to be an IDX file ({len(raw)} bytes); the file is corrupt.")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise FewLabelsError(
            f"{path} has IDX magic number {magic:#010x}, expected {expected_magic:#010x}; "
            "it is not the right Fashion-MNIST file or is corrupt."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FewLabelsError(f"{path} ends inside its IDX header; the file is truncated.")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise FewLabelsError(
            f"{path} holds {len(raw) - header} data bytes but its header {tuple(dims)} "
            f"promises {expected}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_split(folder: Path, images: str, labels: str) -> tuple[torch.Tensor, torch.Tensor]:
    img_path = _find_file(folder, FILES[images])
    lab_path = _find_file(folder, FILES[labels])
    x = read_idx(img_path, IMAGE_MAGIC)
    y = read_idx(lab_path, LABEL_MAGIC)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise FewLabelsError(f"{img_path} holds images of shape {x.shape[1:]}, expected 28x28; it is not a Fashion-MNIST file.")
    if len(x) != len(y):
        raise FewLabelsError(f"{img_path} has {len(x)} images but {lab_path} has {len(y)} labels; one file is corrupt.")
    if y.size and y.max() >= len(CLASSES):
        raise FewLabelsError(f"{lab_path} contains label {int(y.max())}, outside 0..9; the file is corrupt.")
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def load(data_dir: str | os.PathLike | None = None) -> DataSource:
    folder = find(data_dir)
    if folder is None:
        looked = str(data_dir) if data_dir else ", ".join(str(r) for r in search_roots())
        raise FewLabelsError(f"Fashion-MNIST not found (looked in {looked}); {HOW_TO_GET}.")
    x_train, y_train = _read_split(folder, "train_images", "train_labels")
    x_test, y_test = _read_split(folder, "test_images", "test_labels")
    return DataSource(
        train=Dataset(x_train, y_train, list(CLASSES), "fashion-mnist"),
        test=Dataset(x_test, y_test, list(CLASSES), "fashion-mnist-test"),
        hflip=True,
        origin=str(folder),
    )
