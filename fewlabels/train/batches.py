"""One training batch per step: index streams over the pools an algorithm reads, and its augmented views.

The augmentation RNG is re-seeded from (seed, step), so a resumed run draws the same views.
Every rank draws the views of the whole global batch and keeps its share, so W processes see
exactly the images one process with a W times larger batch sees (augmentation is a few % of a
step; this costs W times that). What the algorithm then draws from the generator (mixup,
rotations, VAT's start) is per rank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fewlabels.train.distributed import shard
from fewlabels.train.streams import IndexStream

View = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class BatchMaker:
    """``batch["labeled"]`` (when the algorithm reads labels) and ``batch["unlabeled"]`` (when it reads the pool).

    Positions, not dataset rows, are what the algorithm sees as ``index``: 0..n-1 within the
    labeled set and within the unlabeled pool, so per-sample state is indexed by them.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, labeled: np.ndarray, unlabeled: np.ndarray,
                 views: dict[str, View], wanted: dict[str, list[str]], batch_size: int, uratio: int, seed: int,
                 device: torch.device, channels_last: bool, rank: int = 0, world: int = 1) -> None:
        self.x, self.y = x, y
        self.views, self.wanted = views, wanted
        self.seed, self.device, self.channels_last = seed, device, channels_last
        self.rank, self.world = rank, world
        self.labeled_pool = torch.as_tensor(labeled, dtype=torch.int64)
        self.unlabeled_pool = torch.as_tensor(unlabeled, dtype=torch.int64)
        self.labeled_stream = (IndexStream(np.arange(len(labeled)), batch_size, seed, rank, world)
                               if wanted.get("labeled") else None)
        self.unlabeled_stream = (IndexStream(np.arange(len(unlabeled)), batch_size * uratio, seed + 1, rank, world)
                                 if wanted.get("unlabeled") else None)
        self.generator = torch.Generator(device=device)

    def _views(self, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        """This rank's share of one draw per name over the global batch ``x``; "weak#2", "strong#3" ... are
        further independent draws of the same view. Laid out for the model after sharding (a strided share of
        a channels-last batch is not channels-last, and the layout decides how pooling breaks ties)."""
        out = {}
        for name in names:
            v = shard(self.views[name.split("#", 1)[0]](x, self.generator), self.rank, self.world)
            out[name] = v.contiguous(memory_format=torch.channels_last) if self.channels_last else v
        return out

    def make(self, step: int) -> tuple[dict[str, Any], torch.Tensor | None]:
        """The step's batch, and the unlabeled samples' hidden labels (diagnostics only; never given to the algorithm)."""
        self.generator.manual_seed((self.seed * 1_000_003 + step) * 64)
        batch: dict[str, Any] = {"labeled": {}, "unlabeled": {}, "generator": self.generator}
        if self.labeled_stream is not None:
            positions = self.labeled_stream.next_global()
            li = self.labeled_pool[positions]
            mine = shard(li, self.rank, self.world)
            batch["labeled"] = {"y": self.y[mine].to(self.device),
                                "index": shard(positions, self.rank, self.world).to(self.device)}
            batch["labeled"].update(self._views(self.x[li].to(self.device), self.wanted["labeled"]))
        hidden = None
        if self.unlabeled_stream is not None:
            positions = self.unlabeled_stream.next_global()
            ui = self.unlabeled_pool[positions]
            batch["unlabeled"].update(self._views(self.x[ui].to(self.device), self.wanted["unlabeled"]))
            batch["unlabeled"]["index"] = shard(positions, self.rank, self.world).to(self.device)
            hidden = self.y[shard(ui, self.rank, self.world)]
        if self.world > 1:  # the algorithm's own draws: independent per rank, still reproducible
            seeds = np.random.SeedSequence([self.seed, step, self.rank, 1]).generate_state(2, dtype=np.uint32)
            self.generator.manual_seed(int(seeds[0]) << 32 | int(seeds[1]))
        return batch, hidden

    def state_dict(self) -> dict[str, Any]:
        return {"labeled": self.labeled_stream.state_dict() if self.labeled_stream else None,
                "unlabeled": self.unlabeled_stream.state_dict() if self.unlabeled_stream else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.labeled_stream is not None:
            self.labeled_stream.load_state_dict(state["labeled"])
        if self.unlabeled_stream is not None:
            self.unlabeled_stream.load_state_dict(state["unlabeled"])
