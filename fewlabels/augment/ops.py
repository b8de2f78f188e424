"""Batched image ops, shape (B, C, H, W): colour ops on float images in [0, 1], resampling (crop, flip, warp) on any dtype.

Every op takes a per-sample magnitude tensor ``m`` of shape (B,) in [0, 1] (and a
per-sample sign where the op has a direction), so each image gets its own strength.
Magnitude 0 is the identity for every op that has one.
"""

from __future__ import annotations

import math

import torch

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance's rule: factor 0 gives ``degenerate``, 1 gives ``x``, >1 extrapolates."""
    return torch.lerp(degenerate, x, _per_sample(factor).to(x.dtype)).clamp_(0.0, 1.0)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor).to(x.dtype)).clamp_(0.0, 1.0)  # blend with black


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(grayscale(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # the mean of the grey image from the channel means: one pass over the pixels instead of a grey image
    mean = grayscale(x.mean(dim=(2, 3), keepdim=True))
    return blend(mean.expand_as(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH kernel (ones with a 5 in the centre, /13); border pixels stay, as in PIL."""
    h, w = x.shape[2:]
    if h < 3 or w < 3:
        return x
    inner = x[:, :, 1:-1, 1:-1]
    # 3x3 box sum from shifted slices (on CPU ~2x faster than avg_pool2d, ~4x than a depthwise conv)
    rows = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]
    smooth = (rows[..., :-2] + rows[..., 1:-1]).add_(rows[..., 2:]).add_(inner, alpha=4.0).div_(13.0)
    out = x.clone()  # the border is the image's own, and blending it with itself is the identity
    out[:, :, 1:-1, 1:-1] = blend(smooth, inner, factor)
    return out


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert pixels at or above the per-sample threshold (a threshold above 1 changes nothing)."""
    # |[x >= t] - x| is 1 - x above the threshold and x below, exactly; ~2x cheaper than torch.where here
    return (x >= _per_sample(threshold).to(x.dtype)).to(x.dtype).sub_(x).abs_()


def _to_levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top ``bits`` bits of each 8-bit level, as PIL does."""
    step = _per_sample(torch.pow(2.0, 8 - bits.to(x.dtype)))
    return torch.floor(_to_levels(x) / step) * step / 255.0


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full [0, 1] range."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    span = x.amax(dim=(2, 3), keepdim=True) - lo
    flat = span <= 0  # a constant channel stays as it is
    scale = torch.where(flat, torch.ones_like(span), 1.0 / span)
    return (x - torch.where(flat, torch.zeros_like(lo), lo)).mul_(scale).clamp_(0.0, 1.0)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization per image and channel with PIL's look-up-table rule."""
    b, c, h, w = x.shape
    # one flat bincount over (image-channel, level) pairs: far cheaper on CPU than scatter_add_ into rows
    offsets = torch.arange(0, 256 * b * c, 256, device=x.device, dtype=torch.int32)[:, None]
    keys = (x * 255.0).round_().clamp_(0, 255).to(torch.int32).view(b * c, h * w).add_(offsets).view(-1)
    hist = torch.bincount(keys, minlength=256 * b * c).view(b * c, 256).double()  # float64: exact floor division
    levels = torch.arange(256, device=x.device, dtype=torch.float64)
    last = ((hist > 0) * levels).amax(1, keepdim=True)  # the highest level present
    step = ((hist.sum(1, keepdim=True) - hist.gather(1, last.long())) / 255.0).floor_()
    start = hist.cumsum(1) - hist  # pixels strictly below each level
    safe = step.clamp(min=1.0)
    lut = ((start + (safe / 2.0).floor_()) / safe).floor_().clamp_(0, 255)
    lut = torch.where(step > 0, lut, levels).div_(255.0).to(x.dtype)
    return lut.view(-1).index_select(0, keys).view(b, c, h, w)


# ---- geometry: 3x3 matrices mapping output pixel -> input pixel, centred coordinates


def rotation_matrix(degrees: torch.Tensor) -> torch.Tensor:
    t = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(t), torch.sin(t)
    m = torch.zeros(len(t), 3, 3, device=t.device, dtype=t.dtype)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = cos, -sin, sin, cos, 1.0
    return m


def shear_matrix(shear: torch.Tensor, axis: int) -> torch.Tensor:
    m = torch.eye(3, device=shear.device, dtype=shear.dtype).repeat(len(shear), 1, 1)
    m[:, axis, 1 - axis] = shear
    return m


def translation_matrix(pixels: torch.Tensor, axis: int) -> torch.Tensor:
    m = torch.eye(3, device=pixels.device, dtype=pixels.dtype).repeat(len(pixels), 1, 1)
    m[:, axis, 2] = -pixels  # sample from the left/up so content moves right/down
    return m


def warp_affine(x: torch.Tensor, matrices: torch.Tensor, fill: float = 0.5) -> torch.Tensor:
    """Apply one per-sample affine map to the whole batch, nearest neighbour, as one gather.

    ``matrices`` (B, 3, 3) map output pixel coordinates to input ones, both relative
    to the image centre; areas from outside the image get ``fill``.
    """
    zeros = torch.zeros(len(x), dtype=torch.long, device=x.device)
    return flip_pad_crop(x, 0, zeros, zeros, None, matrices, fill)


def nearest_source(matrices: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input (row, col) nearest to where each output pixel maps, (B, H*W) each, as whole floats.

    The same rule as ``grid_sample(mode="nearest", align_corners=False)`` (pixel centres,
    round half to even): an exact 90-degree turn lands exactly on pixel centres.
    """
    m = matrices.to(torch.float32)
    u = torch.arange(w, device=m.device, dtype=torch.float32) - (w - 1) / 2.0
    v = torch.arange(h, device=m.device, dtype=torch.float32) - (h - 1) / 2.0
    out = []
    for axis, centre in ((1, (h - 1) / 2.0), (0, (w - 1) / 2.0)):
        along_u = m[:, axis, 0, None] * u  # (B, W)
        along_v = m[:, axis, 1, None] * v + (m[:, axis, 2, None] + centre)  # (B, H)
        out.append(torch.add(along_u[:, None, :], along_v[:, :, None]).view(len(m), h * w).round_())
    return out[0], out[1]


def _reflect_(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (integer or whole floats) mirrored into 0..n-1 in place, numpy's 'reflect' (edge not repeated);
    needs |overshoot| < n."""
    return i.abs_().sub_(n - 1).abs_().neg_().add_(n - 1)  # (n-1) - |(n-1) - |i||


def _warp_index(b: int, h: int, w: int, pad: int, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None,
                matrices: torch.Tensor) -> torch.Tensor:
    """Flat input index (B, H*W) of each output pixel for crop-then-warp; h*w where the warp leaves the crop.

    Arithmetic on float rows and columns (exact whole numbers), one conversion at the end:
    on CPU ~2x cheaper than looking the crop up in per-sample row / column tables.
    """
    rows, cols = nearest_source(matrices, h, w)
    off_row, off_col = (h - 1) / 2.0, (w - 1) / 2.0
    # how far outside the crop window, in whole pixels, clamped to 1: exactly 0 inside and 1 outside (the ops
    # below are plain float passes: a bool mask with masked_fill_ costs ~10x as much here)
    outside = torch.maximum(rows.sub(off_row).abs_().sub_(off_row), cols.sub(off_col).abs_().sub_(off_col)).clamp_(0, 1)
    if pad > 0 or flip is not None:
        if flip is not None:  # mirror inside the crop window first, as flip_pad_crop does
            cols = cols.mul_(torch.where(flip, -1.0, 1.0)[:, None]).add_(torch.where(flip, w - 1.0, 0.0)[:, None])
        rows, cols = rows.add_((dy - pad).float()[:, None]), cols.add_((dx - pad).float()[:, None])
        if pad < min(h, w):
            rows, cols = _reflect_(rows, h), _reflect_(cols, w)
        else:  # a pad this large cannot be reflected: repeat the edge instead
            rows, cols = rows.clamp_(0, h - 1), cols.clamp_(0, w - 1)
    index = torch.add(cols, rows, alpha=w)
    return torch.lerp(index, torch.full((), float(h * w), device=index.device), outside).long()  # exact at 0 and 1


def cutout(x: torch.Tensor, size: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, fill: float = 0.5) -> torch.Tensor:
    """Fill a square of side ``size`` pixels centred at (cy, cx) per sample."""
    _, _, h, w = x.shape
    half = (size / 2.0)[:, None]
    rows = torch.arange(h, device=x.device, dtype=x.dtype)[None] + 0.5
    cols = torch.arange(w, device=x.device, dtype=x.dtype)[None] + 0.5
    in_rows = ((rows >= cy[:, None] - half) & (rows < cy[:, None] + half)).to(x.dtype)
    in_cols = ((cols >= cx[:, None] - half) & (cols < cx[:, None] + half)).to(x.dtype)
    box = (in_rows[:, :, None] * in_cols[:, None, :])[:, None]  # 1 inside, 0 outside: lerp is exact at both
    return torch.lerp(x, torch.full((), fill, dtype=x.dtype, device=x.device), box)  # ~10x a broadcast masked_fill


def hflip(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    return torch.where(which.view(-1, 1, 1, 1), x.flip(-1), x)


def crop_maps(b: int, h: int, w: int, pad: int, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None = None,
              device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Input row (B, H) and column (B, W) of each output row / column after reflect-pad, crop and flip.

    The padding is never materialised: rows and columns are mapped through the reflection arithmetically.
    """
    if pad <= 0:
        dy = dx = torch.zeros(b, dtype=torch.long, device=device)
        pad = 0
    cols = torch.arange(w, device=device).expand(b, w)
    if flip is not None:
        cols = torch.where(flip.view(-1, 1), w - 1 - cols, cols)
    rows = torch.arange(h, device=device)[None] + (dy[:, None] - pad)
    cols = cols + (dx[:, None] - pad)
    if pad < min(h, w):
        return _reflect_(rows, h), _reflect_(cols, w)
    return rows.clamp(0, h - 1), cols.clamp(0, w - 1)  # a pad this large cannot be reflected: repeat the edge


def flip_pad_crop(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None = None,
                  matrices: torch.Tensor | None = None, fill: float = 0.5) -> torch.Tensor:
    """Reflect-pad by ``pad``, crop back at per-sample offsets (0..2*pad), mirror where ``flip``, then
    (optionally) warp by ``matrices`` (nearest neighbour, ``fill`` where the warp leaves the crop).

    One gather for all of it, exact, on any dtype: uint8 stays uint8 (4x less memory traffic);
    there ``fill`` is rounded to the nearest 8-bit level.
    """
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    if matrices is None:
        rows, cols = crop_maps(b, h, w, pad, dy, dx, flip, x.device)
        index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w)
        return flat.gather(2, index.expand(b, c, h * w)).view(b, c, h, w)
    index = _warp_index(b, h, w, max(pad, 0), dy, dx, flip, matrices).view(b, 1, h * w)
    level = round(fill * 255.0) if x.dtype == torch.uint8 else fill
    source = torch.cat([flat, flat.new_full((b, c, 1), level)], dim=2)  # index h*w reads the fill
    return source.gather(2, index.expand(b, c, h * w)).view(b, c, h, w)


def pad_crop(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Reflect-pad by ``pad`` and crop back at per-sample offsets (0..2*pad), exactly."""
    return x if pad <= 0 else flip_pad_crop(x, pad, dy, dx)
