"""Transformation groups for label augmentation: each sample gets the element given by its index.

Rotations by multiples of 90 degrees and flips are exact index operations (no
interpolation), so every element is lossless and invertible.
"""

from __future__ import annotations

import torch


def _rot90(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    return torch.rot90(x, quarter_turns, dims=(2, 3))


class TransformGroup:
    """A finite group of image transformations, applied with one index per sample."""

    def __init__(self, name: str, rotations: int, flips: bool) -> None:
        self.name = name
        self.rotations = rotations  # 1 (none), 2 (0/180) or 4 (0/90/180/270)
        self.flips = flips

    def __len__(self) -> int:
        return self.rotations * (2 if self.flips else 1)

    def check(self, height: int, width: int) -> None:
        if self.rotations == 4 and height != width:
            raise ValueError(
                f"transformation group '{self.name}' rotates by 90 degrees, which needs square images, got {height}x{width}"
            )

    def apply(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Element ``index[b]`` applied to ``x[b]``: rotation ``index % rotations``, then a flip if ``index >= rotations``."""
        if x.dim() != 4:
            raise ValueError(f"transformation groups need (B, C, H, W) batches, got shape {tuple(x.shape)}")
        if len(index) != len(x):
            raise ValueError(f"got {len(index)} group indices for {len(x)} images")
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise ValueError(f"group indices must be in 0..{len(self) - 1} for '{self.name}'")
        self.check(x.shape[2], x.shape[3])
        index = index.to(x.device)
        out = torch.empty_like(x)
        step = 4 // self.rotations
        for element in range(len(self)):
            sel = torch.nonzero(index == element).squeeze(1)
            if len(sel) == 0:
                continue
            y = x[sel]
            if element >= self.rotations:
                y = y.flip(-1)
            out[sel] = _rot90(y, (element % self.rotations) * step)
        return out

    def all(self, x: torch.Tensor) -> torch.Tensor:
        """Every element applied to every image: (len(group) * B, C, H, W), element-major."""
        b = len(x)
        index = torch.arange(len(self), device=x.device).repeat_interleave(b)
        return self.apply(x.repeat(len(self), 1, 1, 1), index)


GROUPS = {
    "rot4": TransformGroup("rot4", 4, False),
    "rot2": TransformGroup("rot2", 2, False),
    "hflip": TransformGroup("hflip", 1, True),
    "rot4-hflip": TransformGroup("rot4-hflip", 4, True),
}


def get_group(name: str) -> TransformGroup:
    if name not in GROUPS:
        raise ValueError(f"unknown transformation group {name!r}; known groups: {', '.join(GROUPS)}")
    return GROUPS[name]
