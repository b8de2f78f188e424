"""The candidate transformations: the seven non-identity symmetries of the square, and small warps.

The square's symmetries (the dihedral group D4) are exact index operations. The small warps
(rotation by up to 15 degrees, translation by up to 1/8 of the side, scaling by 0.85..1.15)
draw a magnitude per image from a ``torch.Generator``, so a seed fixes them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch

from fewlabels.augment import ops
from fewlabels.errors import FewLabelsError

# D4 as (quarter turns, then mirrored left-right first?): element = rot90^k o hflip^f
DIHEDRAL: dict[str, tuple[int, bool]] = {
    "hflip": (0, True),
    "vflip": (2, True),
    "rot90": (1, False),
    "rot180": (2, False),
    "rot270": (3, False),
    "transpose": (1, True),  # mirror about the main diagonal
    "antitranspose": (3, True),  # mirror about the other diagonal
}
SMALL = {
    "rotate": "rotation by up to 15 degrees either way",
    "translate": "shift by up to 1/8 of the side along each axis",
    "scale": "zoom by 0.85 to 1.15",
}
CANDIDATES = (*DIHEDRAL, *SMALL)
MAX_DEGREES, MAX_SHIFT, MAX_ZOOM = 15.0, 0.125, 0.15


def check_names(names: list[str] | tuple[str, ...]) -> None:
    """One sentence for a name that is not a candidate."""
    for name in names:
        if name not in CANDIDATES:
            close = difflib.get_close_matches(name, CANDIDATES, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise FewLabelsError(f"Unknown transformation '{name}': {hint}choose from {', '.join(CANDIDATES)}.")


def needs_square(name: str) -> bool:
    """Quarter turns and diagonal mirrors turn an HxW image into WxH."""
    return name in DIHEDRAL and DIHEDRAL[name][0] % 2 == 1


def dihedral(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    """rot90^turns o hflip^mirror on a (B, C, H, W) batch, exactly."""
    if mirror:
        x = x.flip(-1)
    return torch.rot90(x, turns % 4, dims=(2, 3)) if turns % 4 else x


def orbit(name: str) -> list[tuple[int, bool]]:
    """The cyclic group an element generates, identity first: rot90 -> 4 elements, a mirror -> 2."""
    if name not in DIHEDRAL:
        return [(0, False)]
    g, out, e = DIHEDRAL[name], [(0, False)], (0, False)
    cur = g
    while cur != e:
        out.append(cur)
        cur = _apply_after(g, cur)
    return out


def _apply_after(g: tuple[int, bool], h: tuple[int, bool]) -> tuple[int, bool]:
    """g o h, found by acting on a test pattern (no sign bookkeeping to get wrong)."""
    probe = torch.arange(16.0).view(1, 1, 4, 4)
    target = dihedral(dihedral(probe, *h), *g)
    for element in ((t, m) for m in (False, True) for t in range(4)):
        if torch.equal(dihedral(probe, *element), target):
            return element
    raise AssertionError("D4 is closed")


def small_matrices(name: str, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) output->input maps for a small warp, magnitude uniform in (0.25, 1] of the maximum, random sign."""
    mag = 0.25 + 0.75 * torch.rand(n, generator=gen)
    sign = torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1
    if name == "rotate":
        return ops.rotation_matrix(MAX_DEGREES * mag * sign)
    if name == "translate":
        sign2 = torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1
        mag2 = torch.rand(n, generator=gen)
        return ops.translation_matrix(MAX_SHIFT * w * mag * sign, 0) @ ops.translation_matrix(MAX_SHIFT * h * mag2 * sign2, 1)
    m = torch.eye(3).repeat(n, 1, 1)
    zoom = 1.0 + MAX_ZOOM * mag * sign
    m[:, 0, 0], m[:, 1, 1] = 1.0 / zoom, 1.0 / zoom
    return m


def transformer(name: str, fill: float, gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function applying candidate ``name`` to a float (B, C, H, W) batch (small warps fill with ``fill``)."""
    if name in DIHEDRAL:
        turns, mirror = DIHEDRAL[name]
        return lambda x: dihedral(x, turns, mirror)

    def warp(x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return ops.warp_affine(x, small_matrices(name, b, h, w, gen), fill)

    return warp
