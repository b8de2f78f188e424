"""The pool suggest and check-labels work on: samples, the labels given so far, names, features, probabilities.

- Built-in datasets: every label is hidden (a cold start), unless ``--from`` a run: then the run's
  own labeled split (with its label noise, if any) counts as given.
- ``.npz`` arrays: ``y`` as stored, -1 unlabeled; picks are named by row index.
- Image folders: images in class subfolders are labeled, ``unlabeled/`` ones are not; picks are
  named by file path. A folder with nothing but ``unlabeled/`` is a cold start.

Features are a run's backbone features when a run is given. Without one (a cold start), the
label-free embedding is a PCA of the raw samples (pixels on 0..1, or the given features) to
``PCA_DIMS`` dimensions, fitted on the whole pool: it costs seconds, needs no training and no
label. A self-supervised run is better on images (bench/selection.py measures both): train one with
``fewlabels train --algorithm simclr`` and pass it as ``--from``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fewlabels.errors import FewLabelsError

PCA_DIMS = 64


@dataclass
class Pool:
    x: torch.Tensor
    labels: np.ndarray  # the labels given so far, -1 unlabeled
    classes: list[str]
    names: list[str]  # a file path (folders) or the row index (arrays, built-in datasets)
    kind: str  # "folder", "arrays" or "builtin"
    root: Path | None = None  # the image folder (its train/ part for a train/test pair)
    extra: dict = field(default_factory=dict)

    @property
    def labeled(self) -> np.ndarray:
        return np.flatnonzero(self.labels >= 0)


def folder_paths(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """The files of an image folder in the order ``fewlabels.data.folder`` reads them: classes, then unlabeled/."""
    from fewlabels.data.folder import tree_files

    return tree_files(root, training=False)


def load_pool(dataset: str, data_dir: str | None = None) -> Pool:
    """The training pool of ``dataset`` (a built-in name, an .npz or an image folder)."""
    from fewlabels import data as data_mod
    from fewlabels.data import folder

    path = Path(dataset)
    if path.is_dir():
        root = folder.training_root(path)
        paths, labels, classes = folder_paths(root)
        if not paths:
            raise FewLabelsError(f"{root} holds no images; put them in {root}/unlabeled/ or in class subfolders.")
        if classes:
            source = folder.load(path)
            x = source.train.x
            if len(x) != len(paths):  # the loader and this listing disagree: refuse rather than misname picks
                raise FewLabelsError(f"{root} changed while it was read; run the command again.")
        else:  # nothing labeled yet: only unlabeled/
            x = folder.load_files(paths)
        return Pool(x, np.asarray(labels, dtype=np.int64), classes, [str(p) for p in paths], "folder", root)
    source = data_mod.load(dataset, data_dir)
    train = source.train
    kind = "arrays" if dataset.endswith(".npz") else "builtin"
    labels = train.y.numpy().astype(np.int64) if kind == "arrays" else np.full(len(train), -1, dtype=np.int64)
    return Pool(train.x, labels, list(train.classes), [str(i) for i in range(len(train))], kind,
                extra={"hidden_labels": train.y.numpy()} if kind == "builtin" else {})


def run_labels(config, pool: Pool) -> np.ndarray:
    """The labels a run trained with on a built-in pool: its seeded split, with its label noise."""
    from fewlabels import data as data_mod
    from fewlabels.data.dataset import Dataset
    from fewlabels.data.variants import apply_variants

    y = torch.as_tensor(pool.extra["hidden_labels"])
    train = Dataset(pool.x, y, pool.classes)
    split = data_mod.split(y, config.labels_per_class, config.num_labels, config.val_per_class, config.seed, pool.classes)
    variant = apply_variants(train, split, config.seed, config.imbalance_ratio, config.label_noise, config.noise_type)
    labels = np.full(len(y), -1, dtype=np.int64)
    labels[variant.split.labeled] = variant.labels.numpy()[variant.split.labeled]
    return labels


def same_data(run_dataset: str, dataset: str) -> bool:
    if Path(run_dataset).exists() or Path(dataset).exists():
        return Path(run_dataset).resolve() == Path(dataset).resolve()
    return run_dataset == dataset


def check_run_fits(run, pool: Pool, dataset: str, run_dir: str, fix: str | None = None) -> None:
    """Refuse a run trained on other data: another dataset, other classes or another sample shape.

    ``fix`` is how to mend it in the caller's flags (default: suggest's ``--from``).
    """
    if not same_data(run.config.dataset, dataset):
        raise FewLabelsError(f"{run_dir} was trained on {run.config.dataset}, not {dataset}; "
                             f"{fix or f'give --from a run trained on {dataset}, or leave --from out for a cold start'}.")
    fix = fix or "give --from a run trained on this dataset"
    if pool.classes and list(run.classes) != list(pool.classes):
        raise FewLabelsError(f"{run_dir} knows the classes {run.classes[:5]}..., but {dataset} has {pool.classes[:5]}...; "
                             f"{fix}.")
    if tuple(pool.x.shape[1:]) != run.sample_shape:
        raise FewLabelsError(f"{run_dir} takes samples of shape {run.sample_shape}, but {dataset} has "
                             f"{tuple(pool.x.shape[1:])}; {fix}.")


def run_outputs(run, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A run's backbone features and class probabilities of ``x``."""
    from fewlabels.evaluate.metrics import predict_outputs

    logits, feats = predict_outputs(run.model, x, 1024, "cpu", run.is_image and bool(run.config.channels_last))
    from fewlabels.evaluate.tta import temperature_of  # probabilities at the run's fitted temperature, as predict gives

    return feats.numpy(), torch.softmax(logits.double() / temperature_of(run), 1).numpy()


def label_free_features(x: torch.Tensor, seed: int = 0, dims: int = PCA_DIMS) -> np.ndarray:
    """PCA of the raw samples (pixels on 0..1), fitted on the pool itself: no training, no label."""
    from sklearn.decomposition import PCA

    flat = x.flatten(1).float().numpy()
    if x.dtype == torch.uint8:
        flat = flat / 255.0
    dims = min(dims, flat.shape[1], len(flat))
    return PCA(n_components=dims, random_state=seed, svd_solver="randomized").fit_transform(flat).astype(np.float32)


def probe_probs(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Probabilities from a linear probe on the labeled rows' features; None with fewer than two classes labeled."""
    from fewlabels.evaluate.probe import linear_probe

    labeled = np.flatnonzero(labels >= 0)
    if len(np.unique(labels[labeled])) < 2:
        return None
    return linear_probe(torch.as_tensor(features[labeled]), torch.as_tensor(labels[labeled]),
                        torch.as_tensor(features), num_classes)
