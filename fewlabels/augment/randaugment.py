"""RandAugment with Cutout on whole batches: each image draws its own ops, magnitudes and Cutout box.

All geometric ops of an image are folded into one affine map and applied as one gather; colour ops
run slot by slot on the images that drew them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from fewlabels.augment import ops
from fewlabels.augment.images import check_images, draw_integers, draw_uniform, to_unit_float

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
        choice = draw_integers(gen, len(self.names), b, self.n_ops, device=device)
        mag = draw_uniform(gen, b, self.n_ops, device=device)
        sign = draw_integers(gen, 2, b, self.n_ops, device=device).float() * 2 - 1
        cut = draw_uniform(gen, 3, b, device=device)
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
