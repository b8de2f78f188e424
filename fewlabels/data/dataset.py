"""In-memory datasets: uint8 images (N, C, H, W) or float32 features (N, D)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    """Samples and labels held in memory; ``y == -1`` marks an unlabeled sample."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str = "data"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, index: torch.Tensor) -> Dataset:
        return Dataset(self.x[index], self.y[index], self.classes, self.name)


@dataclass
class DataSource:
    """What a loader returns: a training pool, an optional test set, and facts about them."""

    train: Dataset
    test: Dataset | None
    hflip: bool = False  # is a horizontal flip label-preserving for this data? (loaders that know say so)
    origin: str = ""  # where the data was found, for messages and run records
    extra: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return self.train.classes
