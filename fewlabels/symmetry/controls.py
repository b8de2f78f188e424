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


ORIENTATIONS = {  # a random-orientation control: what is applied to each image, and the group the data then has
    "transposed": ("transpose with probability 1/2", ("transpose",)),
    "quarter-turned": ("a random multiple of 90 degrees", ("rot90", "rot180", "rot270")),
    "flipped": ("an upside-down flip with probability 1/2", ("vflip",)),
}


def random_orientation(base: DataSource, kind: str, seed: int = 0) -> DataSource:
    """``base`` with every image (train and test) transposed / turned / flipped at random (seeded), as microscopy,
    satellite tiles or scans come: the data is then symmetric under ``ORIENTATIONS[kind][1]``, which keeps the label."""
    what, _ = ORIENTATIONS[kind]
    rng = np.random.default_rng(seed)

    def make(ds: Dataset, name: str) -> Dataset:
        x = ds.x.clone()
        if kind == "quarter-turned":
            turns = torch.from_numpy(rng.integers(0, 4, len(x)))
            for t in range(1, 4):
                x[turns == t] = torch.rot90(ds.x[turns == t], t, dims=(2, 3))
        else:
            sel = torch.from_numpy(rng.random(len(x)) < 0.5)
            x[sel] = ds.x[sel].transpose(2, 3) if kind == "transposed" else ds.x[sel].flip(2)
        return Dataset(x, ds.y.clone(), list(ds.classes), name)

    return DataSource(make(base.train, f"{base.train.name}-{kind}"), make(base.test, f"{base.test.name}-{kind}"),
                      hflip=False, origin=f"{base.origin}, each image given {what}")


TEXTURES = ("smooth", "grainy", "fine", "spots", "rings")


def textures(seed: int = 0, n_train: int = 2000, n_test: int = 500, side: int = 28) -> DataSource:
    """Five classes of isotropic random textures (noise in one radial frequency band, random disks, random
    rings): every flip and rotation of the square maps each class onto itself, so all seven keep the label and
    the data is already symmetric under them. Random contrast and brightness per image."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij")
    radius = np.hypot(fy, fx)
    bands = {"smooth": (0.0, 0.08), "grainy": (0.12, 0.22), "fine": (0.3, 0.5)}
    yy, xx = np.mgrid[:side, :side]

    def one(c: int) -> np.ndarray:
        name = TEXTURES[c]
        if name in bands:
            lo, hi = bands[name]
            mask = (radius >= lo) & (radius <= hi)
            img = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((side, side))) * mask))
        else:
            img = np.zeros((side, side))
            for _ in range(rng.integers(3, 8)):
                cy, cx = rng.uniform(0, side, 2)
                d = np.hypot(yy - cy, xx - cx)
                r = rng.uniform(2, 4)
                img += (d <= r) if name == "spots" else (np.abs(d - 2 * r) <= 0.9)
        img = (img - img.mean()) / (img.std() + 1e-6)
        img = 128 + rng.uniform(25, 60) * img + rng.uniform(-30, 30)
        return np.clip(img, 0, 255).astype(np.uint8)

    def make(n: int, name: str) -> Dataset:
        y = np.arange(n) % len(TEXTURES)
        x = np.stack([one(int(c)) for c in y])[:, None]
        return Dataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), list(TEXTURES), name)

    return DataSource(make(n_train, "textures"), make(n_test, "textures-test"), hflip=True,
                      origin="isotropic random textures made by fewlabels.symmetry.controls (five classes)")
