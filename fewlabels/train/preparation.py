"""Everything checked and loaded before a run touches any file, so a bad call leaves nothing behind."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fewlabels import algorithms, models
from fewlabels import data as data_mod
from fewlabels.algorithms import Algorithm
from fewlabels.data import Dataset, DataSource, Split
from fewlabels.data.arrays import warn_constant_columns
from fewlabels.data.resize import check_resize, default_image_side, fitted_size, resize_images
from fewlabels.data.split import default_labels_per_class, describe_split
from fewlabels.data.variants import apply_variants
from fewlabels.errors import FewLabelsError
from fewlabels.storage import RunFolder
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import init_from_env, rank_and_world
from fewlabels.train.footprint import check_memory


@dataclass
class Prepared:
    config: TrainConfig
    source: DataSource
    split: Split
    algorithm: Algorithm
    device: torch.device
    hflip: bool
    labels: torch.Tensor | None = None  # the training pool's labels as training sees them (noisy on the labeled set); None: source.train.y
    variants: dict[str, Any] = field(default_factory=dict)  # what label noise / long tail did, for results.json
    summary: str = ""  # the run's first line: labeled / unlabeled counts and why, the input size, the model
    symmetries: list[tuple[int, bool]] | None = None  # flips / quarter turns the views draw from (see augment.Weak)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FewLabelsError(f"device '{name}' was asked for but no CUDA GPU is available; use --device cpu.")
    return torch.device(name)


def prepare(config: TrainConfig, source: DataSource | None = None, overwrite: bool = False) -> Prepared:
    """Validate everything and load the data; touches no file. Data variants: see ``fewlabels.data.variants``.

    Settings the data decides (the model, the image size, how many labels to keep) are written
    into ``config`` here, so config.yaml records what the run did and a resume repeats it.
    """
    config.validate()
    if config.algorithm is not None:  # unknown names and options fail before any data is read
        algorithms.get(config.algorithm, **config.options)
    if config.model is not None:
        models.check_name(config.model)  # before loading data: a typo should not cost a dataset load
    device = init_from_env(config.device) or resolve_device(config.device)  # under torchrun: join the process group
    if config.out is not None:
        RunFolder(config.out).check_new(overwrite)
    side, shrink_only = _image_side(config, device)
    if source is None:
        source = data_mod.load(config.dataset, config.data_dir, side, shrink_only)
    source = _sized(source, side, shrink_only)
    train = source.train
    if train.is_image:
        config.image_size = max(train.sample_shape[1:])
    else:
        if config.augment not in ("auto", "hand"):  # as `fewlabels symmetries` refuses them: recorded, it would do nothing
            raise FewLabelsError(f"{config.dataset} holds feature vectors, not images; flips and rotations do not apply "
                                 f"(--augment {config.augment}); leave --augment out, or give auto or hand.")
        warn_constant_columns(train.x, train.name)
    if config.model is None:
        config.model = models.default_for(train.sample_shape, device.type == "cuda")
    if config.algorithm is None:
        config.algorithm = algorithms.default_for(train.sample_shape)
    algorithm = algorithms.get(config.algorithm, **config.options)
    config.labels_per_class, why = default_labels_per_class(train.y, config.labels_per_class, config.num_labels,
                                                            algorithm.uses_unlabeled)
    split = data_mod.split(train.y, config.labels_per_class, config.num_labels, config.val_per_class,
                           config.seed, train.classes)
    variant = apply_variants(train, split, config.seed, config.imbalance_ratio, config.label_noise, config.noise_type)
    split = variant.split
    if algorithm.uses_unlabeled and len(split.unlabeled) == 0:
        raise FewLabelsError(f"{config.algorithm} needs unlabeled data but every sample is labeled; "
                             "ask for fewer labels or use --algorithm supervised.")
    if algorithm.uses_labeled and len(np.unique(train.y[split.labeled].numpy())) < 2:
        raise FewLabelsError("The labeled data covers a single class; a classifier needs at least two.")
    models.check(config.model, train.sample_shape)
    hflip = source.hflip if config.hflip is None else config.hflip
    algorithm.check_data(train.sample_shape, len(train.classes), hflip=hflip and config.augment == "hand")
    symmetries = None
    if train.is_image:  # which flips / quarter turns the views apply (--augment); may choose SLA's group
        from fewlabels.train.augmentation import resolve_augmentation

        hflip, symmetries, algorithm = resolve_augmentation(config, train, split, hflip, algorithm)
        algorithm.check_data(train.sample_shape, len(train.classes), hflip=hflip)
    shape = "x".join(map(str, train.sample_shape[1:])) + " px images" if train.is_image else f"{train.sample_shape[0]} features"
    summary = f"{describe_split(split, train.y, why)}; {shape}, {config.algorithm} on model {config.model}"
    if train.is_image and config.augment_choice:  # what --augment auto chose, on the run's second line
        from fewlabels.symmetry.choice import describe

        summary += "\n" + describe(config.augment_choice)
    # before anything is written: a step far beyond the machine fails here, not in the allocator minutes later
    check_memory(models.get(config.model, train.sample_shape, train.num_classes), tuple(train.sample_shape),
                 algorithm.views, config.batch_size, config.uratio, device, rank_and_world()[1])
    return Prepared(config, source, split, algorithm, device, hflip, variant.labels, variant.record, summary=summary,
                    symmetries=symmetries)


def _image_side(config: TrainConfig, device: torch.device) -> tuple[int | None, bool]:
    """The longer side images get, and whether it may only shrink them: asked for, or the device's default."""
    if config.image_size is not None:
        return config.image_size, False
    return default_image_side(device.type == "cuda"), True


def _sized(source: DataSource, side: int | None, shrink_only: bool) -> DataSource:
    """The source with its images at ``side`` (a folder's were sized as read; arrays are sized here)."""
    if not source.train.is_image:
        return source
    c, h, w = source.train.sample_shape
    size = fitted_size(h, w, side, shrink_only)
    if size == (h, w) and (source.test is None or source.test.sample_shape == source.train.sample_shape):
        return source
    # before the resize: 8 px digits at --image-size 4096 ask the allocator for ~90 GiB in it
    check_resize(len(source.train.x) + (0 if source.test is None else len(source.test.x)), c, size)

    def sized(ds: Dataset | None) -> Dataset | None:
        return None if ds is None else Dataset(resize_images(ds.x, size), ds.y, ds.classes, ds.name)

    return dataclasses.replace(source, train=sized(source.train), test=sized(source.test))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def normalization_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (images, on 0..1) or per-feature mean and std of the training pool."""
    if x.dim() == 4:
        sample = x[: 20000].float() / 255.0
        return sample.mean(dim=(0, 2, 3)), sample.std(dim=(0, 2, 3))
    std = x.std(0)
    return x.mean(0), torch.where(std > 0, std, torch.full_like(std, float("inf")))  # a constant column: divided away
