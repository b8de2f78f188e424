"""The training configuration: one flat dataclass, validated before any work starts."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

from fewlabels.errors import FewLabelsError


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    labels_per_class: int | None = 4
    num_labels: int | None = None
    val_per_class: int = 0
    seed: int = 0
    hflip: bool | None = None  # None: the dataset decides (digits: no flip)
    # method
    algorithm: str = "fixmatch"
    options: dict[str, Any] = field(default_factory=dict)
    model: str = "cnn"
    # budget and optimisation (FixMatch's recipe)
    iterations: int = 3000
    batch_size: int = 64
    uratio: int = 7
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    ema_decay: float = 0.999
    # evaluation and output
    eval_every: int = 500
    eval_batch_size: int = 1024
    checkpoint_every: int = 500
    keep_checkpoints: int = 1
    out: str | None = None
    # execution
    device: str = "auto"
    channels_last: bool = True
    deterministic: bool = False  # deterministic kernels only (bit-identical resume on GPUs too)

    def validate(self) -> None:
        positive = {"iterations": self.iterations, "batch_size": self.batch_size, "uratio": self.uratio,
                    "eval_every": self.eval_every, "eval_batch_size": self.eval_batch_size,
                    "checkpoint_every": self.checkpoint_every, "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FewLabelsError(f"{name} must be a whole number of at least 1, got {value!r}.")
        for name in ("lr", "weight_decay", "momentum"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or (name == "lr" and value == 0):
                raise FewLabelsError(f"{name} must be {'greater than 0' if name == 'lr' else '0 or more'}, got {value!r}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise FewLabelsError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise FewLabelsError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise FewLabelsError(f"Unknown config key '{key}'{hint}")
        return cls(**d)
