"""Weak and strong (RandAugment + Cutout) augmentation of whole batches.

Each image draws its own ops, magnitudes, flips and crops from a ``torch.Generator``;
all geometric ops of a batch are folded into one affine map per image and applied,
together with the strong view's crop and flip, as one gather on the input's dtype;
colour ops run slot by slot on the images that drew them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from fewlabels.augment import ops

ColorOp = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
GeometricOp = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]

# m in [0, 1] is the magnitude, s in {-1, +1} the direction; m = 0 is the identity.
ENHANCE_RANGE = 0.95  # enhance factors in [0.05, 1.95], as in RandAugment
COLOR_OPS: dict[str, ColorOp] = {
    "identity": lambda x, m, s: x,
    "autocontrast": lambda x, m, s: ops.autocontrast(x),
    "equalize": lambda x, m, s: ops.equalize(x),
    "solarize": lambda x, m, s: ops.solarize(x, (256.0 - 256.0 * m) / 255.0),
    "posterize": lambda x, m, s: ops.posterize(x, 8 - torch.round(4.0 * m)),
    "color": lambda x, m, s: ops.color(x, 1.0 + ENHANCE_RANGE * m * s),
    "contrast": lambda x, m, s: ops.contrast(x, 1.0 + ENHANCE_RANGE * m * s),
    "brightness": lambda x, m, s: ops.brightness(x, 1.0 + ENHANCE_RANGE * m * s),
    "sharpness": lambda x, m, s: ops.sharpness(x, 1.0 + ENHANCE_RANGE * m * s),
}
MAX_DEGREES, MAX_SHEAR, MAX_TRANSLATE = 30.0, 0.3, 0.3
GEOMETRIC_OPS: dict[str, GeometricOp] = {
    "rotate": lambda m, s, h, w: ops.rotation_matrix(MAX_DEGREES * m * s),
    "shear_x": lambda m, s, h, w: ops.shear_matrix(MAX_SHEAR * m * s, axis=0),
    "shear_y": lambda m, s, h, w: ops.shear_matrix(MAX_SHEAR * m * s, axis=1),
    "translate_x": lambda m, s, h, w: ops.translation_matrix(MAX_TRANSLATE * w * m * s, axis=0),
    "translate_y": lambda m, s, h, w: ops.translation_matrix(MAX_TRANSLATE * h * m * s, axis=1),
}
ALL_OPS = tuple(COLOR_OPS) + tuple(GEOMETRIC_OPS)


class Plan(NamedTuple):
    """RandAugment's draws for one batch: op per (image, slot), magnitude, sign, Cutout box, folded geometry."""

    choice: torch.Tensor  # (B, n_ops) op index
    mag: torch.Tensor  # (B, n_ops) in [0, 1]
    sign: torch.Tensor  # (B, n_ops) -1 or +1
    cut: torch.Tensor  # (3, B) size, centre row, centre column, as fractions
    matrices: torch.Tensor | None  # (B, 3, 3) all geometric ops of each image, or None when none can be drawn
    warped: torch.Tensor | None  # (B,) which images drew a geometric op


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


def _rand(gen: torch.Generator, *shape: int, device: torch.device) -> torch.Tensor:
    return torch.rand(*shape, generator=gen, device=gen.device).to(device)


def _randint(gen: torch.Generator, high: int, *shape: int, device: torch.device) -> torch.Tensor:
    return torch.randint(high, shape, generator=gen, device=gen.device).to(device)


def random_symmetry(x: torch.Tensor, elements: Sequence[tuple[int, bool]], gen: torch.Generator) -> torch.Tensor:
    """Each image under one element, drawn uniformly, of a group of the square's symmetries, given as
    (quarter turns, mirrored first) pairs; exact index operations on any dtype."""
    if x.shape[2] != x.shape[3] and any(t % 2 for t, _ in elements):
        raise ValueError(f"quarter turns need square images, got {x.shape[2]}x{x.shape[3]}")
    pick = _randint(gen, len(elements), x.shape[0], device=x.device)
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
        flip = _rand(gen, b, device=device) < 0.5 if self.hflip else None
        pad = int(round(self.pad_fraction * min(h, w)))
        dy = _randint(gen, 2 * pad + 1, b, device=device)
        dx = _randint(gen, 2 * pad + 1, b, device=device)
        return pad, dy, dx, flip

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        if self.symmetries is not None:
            x = random_symmetry(x, self.symmetries, gen)
        pad, dy, dx, flip = self.draw(x.shape, gen, x.device)
        if pad > 0 or flip is not None:
            x = ops.flip_pad_crop(x, pad, dy, dx, flip)  # on uint8 when given uint8: cheaper, and exact
        return to_unit_float(x)


class RandAugment:
    """``n_ops`` random ops per image, each with its own random magnitude, then Cutout.

    As in FixMatch's RandAugment variant, magnitudes are drawn uniformly per image
    instead of being one global hyper-parameter.
    """

    def __init__(
        self,
        n_ops: int = 2,
        ops_names: Sequence[str] | None = None,
        cutout: float = 0.5,
        fill: float = 0.5,
    ) -> None:
        names = tuple(ops_names) if ops_names is not None else ALL_OPS
        unknown = [n for n in names if n not in COLOR_OPS and n not in GEOMETRIC_OPS]
        if unknown:
            raise ValueError(f"unknown augmentation op {unknown[0]!r}; known ops: {', '.join(ALL_OPS)}")
        if not names:
            raise ValueError("RandAugment needs at least one op")
        if n_ops < 0:
            raise ValueError(f"n_ops must be >= 0, got {n_ops}")
        if not 0.0 <= cutout <= 1.0:
            raise ValueError(f"cutout must be in [0, 1], got {cutout}")
        self.names = names
        self.n_ops = n_ops
        self.cutout = cutout
        self.fill = fill

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        return self.apply_in_place(to_unit_float(x).clone(), gen)  # never write into the caller's tensor

    def apply_in_place(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The ops on a float batch this call may overwrite (saves a copy when the caller owns it)."""
        plan = self.draw(x.shape, gen, x.device)
        if plan.matrices is not None:
            sel = torch.nonzero(plan.warped).squeeze(1)
            if len(sel):  # all geometric ops of every image in one gather; untouched images stay exact
                x.index_copy_(0, sel, ops.warp_affine(x.index_select(0, sel), plan.matrices.index_select(0, sel), self.fill))
        return self.apply_colour(x, plan)

    def draw(self, shape: torch.Size, gen: torch.Generator, device: torch.device) -> Plan:
        """Every random choice for a batch of ``shape``, geometric ops already folded into one matrix per image."""
        b, _, h, w = shape
        choice = _randint(gen, len(self.names), b, self.n_ops, device=device)
        mag = _rand(gen, b, self.n_ops, device=device)
        sign = _randint(gen, 2, b, self.n_ops, device=device).float() * 2 - 1
        cut = _rand(gen, 3, b, device=device)
        geometric = [(k, GEOMETRIC_OPS[n]) for k, n in enumerate(self.names) if n in GEOMETRIC_OPS]
        if not geometric or not self.n_ops:
            return Plan(choice, mag, sign, cut, None, None)
        # each (image, slot) draws one op, and magnitude 0 is the identity for every geometric op, so a slot's
        # matrix is I + sum_k (op_k(m * [drew k]) - I), exactly; each op is built once for all slots
        flat_choice, flat_mag, flat_sign = choice.reshape(-1), mag.reshape(-1), sign.reshape(-1)
        eye = torch.eye(3, device=device)
        slots = eye.expand(b * self.n_ops, 3, 3).clone()
        for k, op in geometric:
            slots += op(flat_mag * (flat_choice == k), flat_sign, h, w) - eye
        slots = slots.view(b, self.n_ops, 3, 3)
        matrices = slots[:, 0]
        for slot in range(1, self.n_ops):
            matrices = matrices @ slots[:, slot]
        warped = torch.isin(choice, torch.tensor([k for k, _ in geometric], device=device)).any(1)
        return Plan(choice, mag, sign, cut, matrices, warped)

    def apply_colour(self, x: torch.Tensor, plan: Plan, position: torch.Tensor | None = None,
                     fill: float | None = None) -> torch.Tensor:
        """The drawn colour ops, slot by slot, then Cutout (the geometry is done).

        Per slot the batch is put in order of the op each image drew, so every op runs on one
        contiguous slice in place; one reordering per slot and one back at the end cost less
        than taking each op's images out and putting them back. ``position``: x[i] is image
        position[i] of the batch (None: the batch's own order); the result is in the batch's order.
        ``fill``: Cutout's value (``self.fill`` when None).
        """
        b, _, h, w = x.shape
        colour = [name in COLOR_OPS and name != "identity" for name in self.names]
        for slot in range(self.n_ops):
            drawn = plan.choice[:, slot] if position is None else plan.choice[position, slot]
            counts = torch.bincount(drawn, minlength=len(self.names)).tolist()
            if not any(n and is_colour for n, is_colour in zip(counts, colour)):
                continue
            if not bool((drawn[1:] >= drawn[:-1]).all()):  # not in order yet
                order = torch.argsort(drawn, stable=True)
                x = x.index_select(0, order)
                position = order if position is None else position[order]
            elif position is None:
                position = torch.arange(b, device=x.device)
            start = 0
            for k, n in enumerate(counts):
                if n and colour[k]:
                    rows, images = slice(start, start + n), position[start : start + n]
                    x[rows] = COLOR_OPS[self.names[k]](x[rows], plan.mag[images, slot], plan.sign[images, slot].to(x.dtype))
                start += n
        if position is not None:
            x = x.index_select(0, torch.argsort(position))
        if self.cutout > 0:
            size = plan.cut[0] * self.cutout * min(h, w)
            x = ops.cutout(x, size, plan.cut[1] * h, plan.cut[2] * w, self.fill if fill is None else fill)
        return x


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
        area = lo + (hi - lo) * _rand(gen, b, device=device)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand(gen, b, device=device))
        width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the side
        height = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (2 * _rand(gen, b, device=device) - 1) * (1 - width)  # the crop stays inside the image
        cy = (2 * _rand(gen, b, device=device) - 1) * (1 - height)
        flip = _rand(gen, b, device=device) < 0.5
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
        jittered = _rand(gen, b, device=x.device) < self.jitter_p
        factors = 1 + self.jitter * (2 * _rand(gen, 3, b, device=x.device) - 1)
        factors = torch.where(jittered, factors, torch.ones_like(factors))
        x = ops.contrast(ops.brightness(x, factors[0]), factors[1])
        if c == 3:
            x = ops.color(x, factors[2])
            grey = _rand(gen, b, device=x.device) < self.gray_p
            x = torch.where(grey.view(-1, 1, 1, 1), ops.grayscale(x).expand_as(x), x)
        return x


class Identity:
    """No augmentation: the clean view (evaluation, or algorithms that want it)."""

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        check_images(x)
        return to_unit_float(x)
