"""Image size for the machine: photos shrink once, at load, to a size a CPU can train on.

A folder's files are resized by PIL as they are read (``folder.load_files``), arrays in memory by
``resize_images``; ``predict`` reads files and arrays through the same two functions, so a model sees
the same pixels at prediction time as in training.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from fewlabels.errors import FewLabelsError
from fewlabels.utils.memory import available_bytes, human

CPU_IMAGE_SIDE = 32  # the longer side photos shrink to on a CPU by default (CIFAR's size; ~2x a Fashion-MNIST step)
MIN_IMAGE_SIDE = 8  # below this no image model here learns anything useful
RESIZE_CHUNK = 4096  # images resized at once, as floats (what resizing needs beyond the resized copy)


def default_image_side(on_gpu: bool) -> int | None:
    """The default longest side: CPU_IMAGE_SIDE on a CPU, the images' own size on a GPU (None)."""
    return None if on_gpu else CPU_IMAGE_SIDE


def fitted_size(height: int, width: int, side: int | None, shrink_only: bool) -> tuple[int, int]:
    """(height, width) whose longer side is ``side``, keeping the aspect ratio; ``shrink_only`` never enlarges."""
    longer = max(height, width)
    if side is None or longer == side or (shrink_only and longer <= side):
        return height, width
    scale = side / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) images resized to ``size`` with antialiased bilinear filtering, in chunks (bounded memory)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    chunks = []
    for start in range(0, len(x), RESIZE_CHUNK):
        part = x[start : start + RESIZE_CHUNK].float()
        part = F.interpolate(part, size=size, mode="bilinear", antialias=True, align_corners=False)
        chunks.append(part.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(chunks)


def check_resize(count: int, channels: int, size: tuple[int, int], reading: str | os.PathLike | None = None) -> int:
    """Refuse, before resizing, ``count`` images whose copy at ``size`` (kept for the whole run, as bytes) and the
    resize's float working copy cannot fit in this machine's memory; returns the resized copy's bytes.

    ``reading``: the image folder whose files are resized as they are read (``data.folder.load``), one at a time
    into the copy, so there is no working copy to count; checked from the files' count and headers, before any
    image is decoded.
    """
    per_image = channels * size[0] * size[1]
    held = count * per_image
    need = held + (0 if reading is not None else 4 * min(count, RESIZE_CHUNK) * per_image)
    have = available_bytes(None)  # the data lives in the machine's memory, not on a GPU
    if have is not None and need > have:
        doing = f"Reading the images of {reading} at" if reading is not None else "Resizing the images to"
        working = "" if reading is not None else ", and the resize's working copy"
        raise FewLabelsError(f"{doing} {size[0]}x{size[1]} px needs at least {human(need)} ({count} images of "
                             f"{channels}x{size[0]}x{size[1]} held in memory{working}), but this machine has "
                             f"{human(have)} of memory available; lower --image-size.")
    return held
