"""A picture of what the model sees: originals beside weak and strong views."""

from __future__ import annotations

import numpy as np
import torch

from fewlabels.augment.images import to_unit_float
from fewlabels.augment.policies import Strong, Weak


def preview_grid(x: torch.Tensor, hflip: bool = True, strong_views: int = 3, seed: int = 0, scale: int = 4,
                 gap: int = 2) -> np.ndarray:
    """An (H', W', 3) uint8 grid: one row per image, columns original | weak | strong x ``strong_views``."""
    gen = torch.Generator().manual_seed(seed)
    columns = [to_unit_float(x), Weak(hflip)(x, gen)] + [Strong(hflip)(x, gen) for _ in range(strong_views)]
    b, c, h, w = x.shape
    cell_h, cell_w = h * scale + gap, w * scale + gap
    grid = np.full((b * cell_h + gap, len(columns) * cell_w + gap, 3), 255, dtype=np.uint8)
    for j, col in enumerate(columns):
        imgs = (col.clamp(0, 1) * 255).round().to(torch.uint8)
        imgs = imgs.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        if c == 1:
            imgs = imgs.expand(-1, 3, -1, -1)
        arr = imgs.permute(0, 2, 3, 1).numpy()
        for i in range(b):
            top, left = gap + i * cell_h, gap + j * cell_w
            grid[top : top + h * scale, left : left + w * scale] = arr[i]
    return grid
