"""Weak and strong (RandAugment + Cutout, randaugment.py) augmentation of whole batches, and crops.

Each image draws its own ops, magnitudes, flips and crops from a ``torch.Generator``;
all geometric ops of a batch are folded into one affine map per image and applied,
together with the strong view's crop and flip, as one gather on the input's dtype;
colour ops run slot by slot on the images that drew them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fewlabels.augment import ops
from fewlabels.augment.images import check_images, draw_integers, draw_uniform, to_unit_float
from fewlabels.augment.randaugment import RandAugment


def random_symmetry(x: torch.Tensor, elements: Sequence[tuple[int, bool]], gen: torch.Generator) -> torch.Tensor:
    """Each image under one element, drawn uniformly, of a group of the square's symmetries, given as
    (quarter turns, mirrored first) pairs; exact index operations on any dtype."""
    if x.shape[2] != x.shape[3] and any(t % 2 for t, _ in elements):
        raise ValueError(f"quarter turns need square images, got {x.shape[2]}x{x.shape[3]}")
    pick = draw_integers(gen, len(elements), x.shape[0], device=x.device)
    out = x.clone()
    for k, (turns, mirror) in enumerate(elements):
        sel = torch.nonzero(pick == k).squeeze(1)
        if len(sel) == 0 or (turns % 4 == 0 and not mirror):
            continue
        y = x[sel].flip(-1) if mirror else x[sel]
        out[sel] = torch.rot90(y, turns % 4, dims=(2, 3)) if turns % 4 else y
    return out


class Weak:
    """Random horizontal flip (optional) and reflect-pad-and-crop by a fraction of the size.

    ``symmetries``: a group of the square's symmetries, as (quarter turns, mirrored first) pairs with the
    identity, one drawn per image before the rest (None: none; the default draws nothing extra).
    """

    def __init__(self, hflip: bool = True, pad_fraction: float = 0.125,
                 symmetries: Sequence[tuple[int, bool]] | None = None) -> None:
        if not 0.0 <= pad_fraction < 1.0:
            raise ValueError(f"pad_fraction must be in [0, 1), got {pad_fraction}")
        self.hflip = hflip
        self.pad_fraction = pad_fraction
        self.symmetries = list(symmetries) if symmetries and len(symmetries) > 1 else None

    def draw(self, shape: torch.Size, gen: torch.Generator, device: torch.device
             ) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Padding, per-image crop offsets and flips (None when flipping is off)."""
        b, _, h, w = shape
        flip = draw_uniform(gen, b, device=device) < 0.5 if self.hflip else None
        pad = int(round(self.pad_fraction * min(h, w)))
        dy = draw_integers(gen, 2 * pad + 1, b, device=device)
        dx = draw_integers(gen, 2 * pad + 1, b, device=device)
        return pad, dy, dx, flip

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        if self.symmetries is not None:
            x = random_symmetry(x, self.symmetries, gen)
        pad, dy, dx, flip = self.draw(x.shape, gen, x.device)
        if pad > 0 or flip is not None:
            x = ops.flip_pad_crop(x, pad, dy, dx, flip)  # on uint8 when given uint8: cheaper, and exact
        return to_unit_float(x)


class Strong:
    """The weak view followed by RandAugment and Cutout: FixMatch's strong view.

    Crop, flip and the geometric ops are one gather on the input's dtype (uint8 stays uint8 until
    the colour ops), instead of a crop followed by a warp. On uint8 input the fill (of areas a
    warp leaves and of Cutout alike) is the nearest 8-bit level: 0.5 becomes 128/255, PIL's grey.
    """

    def __init__(self, hflip: bool = True, pad_fraction: float = 0.125,
                 symmetries: Sequence[tuple[int, bool]] | None = None, **randaugment) -> None:
        self.weak = Weak(hflip, pad_fraction, symmetries)
        self.randaugment = RandAugment(**randaugment)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        if self.weak.symmetries is not None:
            x = random_symmetry(x, self.weak.symmetries, gen)
        pad, dy, dx, flip = self.weak.draw(x.shape, gen, x.device)
        plan = self.randaugment.draw(x.shape, gen, x.device)
        matrices, position = plan.matrices, None
        if self.randaugment.n_ops:  # gather in the order RandAugment's first slot wants: saves reordering floats
            position = torch.argsort(plan.choice[:, 0], stable=True)
            x, dy, dx = x.index_select(0, position), dy[position], dx[position]
            flip = None if flip is None else flip[position]
            matrices = None if matrices is None else matrices[position]
        fill = self.randaugment.fill
        if x.dtype == torch.uint8:
            fill = round(fill * 255.0) / 255.0  # what the uint8 gather can hold; Cutout uses the same grey
        if pad > 0 or flip is not None or matrices is not None:
            x = to_unit_float(ops.flip_pad_crop(x, pad, dy, dx, flip, matrices, fill))
        elif position is None:  # nothing moves: a float copy this call may overwrite
            x = to_unit_float(x).clone() if x.is_floating_point() else to_unit_float(x)
        else:
            x = to_unit_float(x)  # index_select made a copy already
        return self.randaugment.apply_colour(x, plan, position, fill)


class ResizedCrop:
    """SimCLR's view, sized for small images: a random resized crop, a flip and colour jitter.

    The crop covers ``scale`` of the image's area at an aspect ratio drawn log-uniformly from ``ratio``,
    resized back bilinearly; with probability ``jitter_p`` brightness, contrast and (colour images)
    saturation each change by a factor in [1 - jitter, 1 + jitter]; colour images turn grey with
    probability ``gray_p``. Paper values for CIFAR ("A Simple Framework for Contrastive Learning of
    Visual Representations", appendix B.9): no blur, crop area from 0.08 (0.2 here: at 28 pixels a
    smaller crop keeps a handful of pixels), jitter 0.4 (the paper's 0.8 x strength 0.5), p = 0.8 and
    0.2; the paper's hue jitter (0.1) is left out. Aspect ratios are of the image's sides, not pixels.
    Crops teach what the RandAugment view does not: that a part of an object names the whole.
    """

    def __init__(self, hflip: bool = True, symmetries: Sequence[tuple[int, bool]] | None = None,
                 scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 jitter: float = 0.4, jitter_p: float = 0.8, gray_p: float = 0.2) -> None:
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
        self.hflip = hflip
        self.symmetries = list(symmetries) if symmetries and len(symmetries) > 1 else None
        self.scale, self.ratio = scale, ratio
        self.jitter, self.jitter_p, self.gray_p = jitter, jitter_p, gray_p

    def crop_matrices(self, b: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
        """(B, 2, 3) maps from output to input coordinates in [-1, 1] (``affine_grid``'s convention)."""
        lo, hi = self.scale
        area = lo + (hi - lo) * draw_uniform(gen, b, device=device)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * draw_uniform(gen, b, device=device))
        width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the side
        height = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (2 * draw_uniform(gen, b, device=device) - 1) * (1 - width)  # the crop stays inside the image
        cy = (2 * draw_uniform(gen, b, device=device) - 1) * (1 - height)
        flip = draw_uniform(gen, b, device=device) < 0.5
        sx = torch.where(flip, -width, width) if self.hflip else width
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, height, cy
        return theta

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        if self.symmetries is not None:
            x = random_symmetry(x, self.symmetries, gen)
        x = to_unit_float(x)
        b, c = x.shape[:2]
        theta = self.crop_matrices(b, gen, x.device)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.nn.functional.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border",
                                            align_corners=False)
        jittered = draw_uniform(gen, b, device=x.device) < self.jitter_p
        factors = 1 + self.jitter * (2 * draw_uniform(gen, 3, b, device=x.device) - 1)
        factors = torch.where(jittered, factors, torch.ones_like(factors))
        x = ops.contrast(ops.brightness(x, factors[0]), factors[1])
        if c == 3:
            x = ops.color(x, factors[2])
            grey = draw_uniform(gen, b, device=x.device) < self.gray_p
            x = torch.where(grey.view(-1, 1, 1, 1), ops.grayscale(x).expand_as(x), x)
        return x


class Identity:
    """No augmentation: the clean view (evaluation, or algorithms that want it)."""

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        return to_unit_float(x)
