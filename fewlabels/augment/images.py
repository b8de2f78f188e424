"""The image-batch conventions of every augmentation, and the seeded draws they make.

A batch is (B, C, H, W), uint8 0..255 or float 0..1; every random number comes from the caller's
``torch.Generator`` (on its own device, then moved), so a resumed run draws the same numbers.
"""

from __future__ import annotations

import torch


def check_images(x: torch.Tensor) -> None:
    """Reject what is not a non-empty (B, C, H, W) image batch, naming the problem."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"augmentation needs a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"augmentation needs a batch of shape (B, C, H, W), got rank {x.dim()} shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("augmentation got an empty batch (B = 0)")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"augmentation needs uint8 or floating images, got dtype {x.dtype}")


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float 0..1; float images are taken to be in 0..1 already."""
    return torch.div(x, 255.0) if x.dtype == torch.uint8 else x.float()  # one pass, the same float32 division


def draw_uniform(gen: torch.Generator, *shape: int, device: torch.device) -> torch.Tensor:
    return torch.rand(*shape, generator=gen, device=gen.device).to(device)


def draw_integers(gen: torch.Generator, high: int, *shape: int, device: torch.device) -> torch.Tensor:
    return torch.randint(high, shape, generator=gen, device=gen.device).to(device)
