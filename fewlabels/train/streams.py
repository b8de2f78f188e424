"""Endless shuffled index streams, rank-aware, whose position is a small resumable state."""

from __future__ import annotations

import numpy as np
import torch


class IndexStream:
    """Yields batches of indices from ``indices``, reshuffled every epoch.

    The permutation of epoch ``e`` depends only on ``(seed, e)``, so the stream's
    state is just ``(epoch, position)``. With several processes each rank takes
    its own slice of the same global batch: rank r gets items r, r+W, r+2W, ...
    """

    def __init__(self, indices: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(indices) == 0:
            raise ValueError("an index stream needs at least one index")
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        self.global_batch = batch_size * world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return self.indices[torch.randperm(len(self.indices), generator=g)]

    def next(self) -> torch.Tensor:
        """This rank's share of the next global batch."""
        return self.next_global()[self.rank :: self.world_size]

    def next_global(self) -> torch.Tensor:
        """The next global batch (every rank's share), wrapping across epochs (small labeled sets repeat within a batch)."""
        taken = []
        need = self.global_batch
        while need > 0:
            chunk = self._perm[self.position : self.position + need]
            taken.append(chunk)
            need -= len(chunk)
            self.position += len(chunk)
            if self.position >= len(self._perm):
                self.epoch += 1
                self.position = 0
                self._perm = self._permutation(self.epoch)
        return torch.cat(taken)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._perm = self._permutation(self.epoch)
