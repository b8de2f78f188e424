"""Batched augmentation: the ops one by one, the policies, and feature-space views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fewlabels.augment import (
    ALL_OPS,
    COLOR_OPS,
    FeatureNoise,
    Identity,
    RandAugment,
    ResizedCrop,
    Strong,
    Weak,
    make_feature_views,
    make_views,
    ops,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def levels_image(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random float image on exact 8-bit levels (k / 255)."""
    return torch.randint(0, 256, shape, generator=gen(seed)).float() / 255.0


def as_levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round().to(torch.int64)


# ---------------------------------------------------------------- geometry


def test_hflip_per_sample_exact():
    x = levels_image(2, 3, 4, 5)
    out = ops.hflip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1))
    assert torch.equal(out[1], x[1])
    assert out[0, 0, 0, 0] == x[0, 0, 0, 4]


ARANGE = torch.arange(16.0).view(1, 1, 4, 4)


def test_pad_crop_centre_offset_is_identity():
    out = ops.pad_crop(ARANGE, 1, torch.tensor([1]), torch.tensor([1]))
    assert torch.equal(out, ARANGE)
    x = levels_image(3, 3, 6, 7)
    assert torch.equal(ops.pad_crop(x, 2, torch.full((3,), 2), torch.full((3,), 2)), x)


def test_pad_crop_reflect_values():
    # reflect padding of [[0..3],[4..7],[8..11],[12..15]] by 1, then the top-left / bottom-right 4x4 crop
    top_left = ops.pad_crop(ARANGE, 1, torch.tensor([0]), torch.tensor([0]))
    assert top_left[0, 0].tolist() == [[5, 4, 5, 6], [1, 0, 1, 2], [5, 4, 5, 6], [9, 8, 9, 10]]
    bottom_right = ops.pad_crop(ARANGE, 1, torch.tensor([2]), torch.tensor([2]))
    assert bottom_right[0, 0].tolist() == [[5, 6, 7, 6], [9, 10, 11, 10], [13, 14, 15, 14], [9, 10, 11, 10]]


def test_pad_crop_offsets_are_per_sample_and_match_numpy():
    x = levels_image(4, 2, 5, 6, seed=3)
    dy, dx = torch.tensor([0, 1, 2, 4]), torch.tensor([3, 0, 2, 4])
    out = ops.pad_crop(x, 2, dy, dx)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    for i in range(4):
        r, c = int(dy[i]), int(dx[i])
        expected = padded[i, :, r : r + 5, c : c + 6]
        assert np.array_equal(out[i].numpy(), expected)


def test_pad_crop_zero_pad_is_identity():
    x = levels_image(2, 1, 3, 3)
    assert torch.equal(ops.pad_crop(x, 0, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)), x)


def test_warp_affine_identity():
    x = levels_image(4, 3, 9, 11)
    out = ops.warp_affine(x, torch.eye(3).repeat(4, 1, 1))
    assert torch.equal(out, x)  # a gather: bit-exact


@pytest.mark.parametrize("size", [6, 7])
def test_warp_affine_rotation_90_equals_rot90(size):
    x = torch.rand(2, 3, size, size, generator=gen(1))
    out = ops.warp_affine(x, ops.rotation_matrix(torch.tensor([90.0, -90.0])))
    torch.testing.assert_close(out[0], torch.rot90(x[0], 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(x[1], -1, dims=(-2, -1)), atol=1e-5, rtol=0)
    # direction matters: +90 is not the clockwise turn
    assert (out[0] - torch.rot90(x[0], -1, dims=(-2, -1))).abs().max() > 0.1


def test_warp_affine_translation_moves_content_and_fills():
    x = torch.rand(1, 2, 5, 6, generator=gen(2))
    right = ops.warp_affine(x, ops.translation_matrix(torch.tensor([2.0]), axis=0), fill=0.25)
    torch.testing.assert_close(right[..., 2:], x[..., :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(right[..., :2], torch.full_like(right[..., :2], 0.25), atol=1e-6, rtol=0)
    down = ops.warp_affine(x, ops.translation_matrix(torch.tensor([1.0]), axis=1), fill=0.0)
    torch.testing.assert_close(down[..., 1:, :], x[..., :-1, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(down[..., :1, :], torch.zeros_like(down[..., :1, :]), atol=1e-6, rtol=0)
    left = ops.warp_affine(x, ops.translation_matrix(torch.tensor([-3.0]), axis=0), fill=1.0)
    torch.testing.assert_close(left[..., :3], x[..., 3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(left[..., 3:], torch.ones_like(left[..., 3:]), atol=1e-6, rtol=0)


def test_warp_affine_per_sample_matrices():
    x = torch.rand(2, 1, 6, 6, generator=gen(4))
    m = torch.stack([torch.eye(3), ops.rotation_matrix(torch.tensor([90.0]))[0]])
    out = ops.warp_affine(x, m)
    torch.testing.assert_close(out[0], x[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(x[1], 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def random_affine(b: int, seed: int) -> torch.Tensor:
    g = gen(seed)
    m = ops.rotation_matrix((torch.rand(b, generator=g) * 2 - 1) * 40)
    m = m @ ops.shear_matrix((torch.rand(b, generator=g) * 2 - 1) * 0.3, axis=0)
    return m @ ops.translation_matrix((torch.rand(b, generator=g) * 2 - 1) * 6, axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_warp_affine_matches_grid_sample_nearest(seed):
    """An independent reference: torch's own nearest-neighbour resampler, fill by shifting."""
    import torch.nn.functional as F

    x = torch.rand(16, 3, 13, 10, generator=gen(seed))
    m = random_affine(16, seed)
    h, w = x.shape[2:]
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0]))
    from_norm = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0]))
    grid = F.affine_grid((to_norm @ m @ from_norm)[:, :2], list(x.shape), align_corners=False)
    expected = F.grid_sample(x - 0.3, grid, mode="nearest", align_corners=False) + 0.3
    ours = ops.warp_affine(x, m, fill=0.3)
    same = (ours - expected).abs() < 1e-5
    assert same.float().mean() > 0.995  # rounding of exact half-pixel ties may differ, nothing else
    assert (ours == 0.3).sum() > 100  # the maps do leave the image


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("pad", [0, 2, 6])
def test_crop_then_warp_in_one_gather_equals_the_two_steps(dtype, pad):
    x = sample_batch(dtype, 3, 7, 9, b=24, seed=pad)
    g = gen(pad)
    dy = torch.randint(2 * pad + 1, (24,), generator=g)
    dx = torch.randint(2 * pad + 1, (24,), generator=g)
    flip = torch.rand(24, generator=g) < 0.5
    m = random_affine(24, pad + 10)
    fused = ops.flip_pad_crop(x, pad, dy, dx, flip, m, fill=0.25)
    two_steps = ops.warp_affine(ops.flip_pad_crop(x, pad, dy, dx, flip), m, fill=0.25)
    assert fused.dtype == dtype
    assert torch.equal(fused, two_steps)
    if dtype == torch.uint8:
        assert (fused == 64).any()  # the fill, on the nearest 8-bit level (0.25 * 255 = 63.75)


def test_strong_is_the_weak_view_then_randaugment():
    """Strong folds the crop into RandAugment's gather; on float input that must change nothing."""
    x = sample_batch(torch.float32, 3, 16, 16, b=32, seed=3)
    fused = Strong(n_ops=3)(x, gen(8))
    g = gen(8)
    weak = Weak()(x, g)
    assert torch.equal(fused, RandAugment(n_ops=3).apply_in_place(weak, g))


def test_shear_matrix_layout():
    m = ops.shear_matrix(torch.tensor([0.3]), axis=0)[0]
    torch.testing.assert_close(m, torch.tensor([[1, 0.3, 0], [0, 1, 0], [0, 0, 1]]))
    m = ops.shear_matrix(torch.tensor([0.3]), axis=1)[0]
    torch.testing.assert_close(m, torch.tensor([[1, 0, 0], [0.3, 1, 0], [0, 0, 1]]))


# ---------------------------------------------------------------- colour


def test_solarize():
    x = torch.tensor([0.0, 0.1, 0.39, 0.4, 0.8, 1.0]).view(1, 1, 1, 6)
    out = ops.solarize(x, torch.tensor([0.4]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.1, 0.39, 0.6, 0.2, 0.0]))
    assert out[0, 0, 0, 1] == x[0, 0, 0, 1] and out[0, 0, 0, 2] == x[0, 0, 0, 2]  # untouched, bit for bit


def test_solarize_threshold_above_one_is_identity():
    x = levels_image(2, 3, 4, 4)
    assert torch.equal(ops.solarize(x, torch.tensor([256.0 / 255.0, 2.0])), x)


def test_solarize_per_sample_threshold():
    x = torch.full((2, 1, 2, 2), 0.7)
    out = ops.solarize(x, torch.tensor([0.5, 0.9]))
    torch.testing.assert_close(out[0], torch.full((1, 2, 2), 0.3))
    assert torch.equal(out[1], x[1])


def test_posterize():
    x = (torch.arange(256.0) / 255.0).view(1, 1, 16, 16).repeat(2, 1, 1, 1)
    out = ops.posterize(x, torch.tensor([8.0, 1.0]))
    assert torch.equal(out[0], x[0])
    lv = as_levels(out[1]).flatten()
    assert sorted(set(lv.tolist())) == [0, 128]
    assert torch.equal(lv, torch.where(torch.arange(256) >= 128, 128, 0))


def test_posterize_4_bits_matches_bit_mask():
    x = (torch.arange(256.0) / 255.0).view(1, 1, 16, 16)
    out = as_levels(ops.posterize(x, torch.tensor([4.0]))).flatten()
    assert torch.equal(out, torch.arange(256) & 0xF0)


def test_equalize_spreads_a_narrow_histogram():
    # PIL's rule leaves images of under ~256 pixels alone (step = 0), so use 32x32
    lv = torch.randint(100, 121, (1, 1, 32, 32), generator=gen(5))
    x = lv.float() / 255.0
    out = ops.equalize(x)
    assert out.min() == 0.0
    assert out.max() >= 250 / 255
    assert (out.max() - out.min()) > 10 * (x.max() - x.min())
    # monotone: a brighter input level never maps to a darker output level
    order = torch.argsort(x.flatten())
    assert (torch.diff(out.flatten()[order]) >= 0).all()


def test_equalize_constant_image_unchanged():
    x = torch.full((2, 3, 5, 5), 77 / 255.0)
    assert torch.equal(ops.equalize(x), x)


@pytest.mark.parametrize("seed", range(6))
def test_equalize_matches_pil(seed):
    from PIL import Image, ImageOps

    g = gen(seed)
    high = int(torch.randint(2, 257, (1,), generator=g))
    a = torch.randint(0, high, (37, 41, 3), generator=g).to(torch.uint8).numpy()
    a[:3, :3, 0] = 255  # a lone top level exercises the "last level" rule
    expected = np.asarray(ImageOps.equalize(Image.fromarray(a))).transpose(2, 0, 1)
    ours = as_levels(ops.equalize(torch.from_numpy(a.transpose(2, 0, 1).copy())[None].float() / 255.0))[0]
    assert np.abs(ours.numpy() - expected.astype(np.int64)).max() == 0
    assert not np.array_equal(expected, a.transpose(2, 0, 1))  # PIL did change the image


def test_equalize_small_image_is_left_alone_like_pil():
    x = levels_image(1, 1, 8, 8)  # 64 pixels: PIL's step is 0, so its lookup table is the identity
    assert torch.equal(ops.equalize(x), x)


def test_autocontrast_stretches_each_channel():
    x = torch.rand(2, 3, 6, 6, generator=gen(6)) * 0.4 + 0.3
    x[1, 2] = 0.6  # a constant channel
    out = ops.autocontrast(x)
    lo, hi = out.amin(dim=(2, 3)), out.amax(dim=(2, 3))
    assert torch.allclose(lo[0], torch.zeros(3)) and torch.allclose(hi[0], torch.ones(3))
    assert torch.allclose(lo[1, :2], torch.zeros(2)) and torch.allclose(hi[1, :2], torch.ones(2))
    assert torch.equal(out[1, 2], x[1, 2])


@pytest.mark.parametrize("seed", range(4))
def test_autocontrast_matches_pil_within_one_level(seed):
    from PIL import Image, ImageOps

    g = gen(seed)
    a = torch.randint(30, 200, (9, 11, 3), generator=g).to(torch.uint8).numpy()
    expected = np.asarray(ImageOps.autocontrast(Image.fromarray(a))).transpose(2, 0, 1).astype(np.int64)
    ours = as_levels(ops.autocontrast(torch.from_numpy(a.transpose(2, 0, 1).copy())[None].float() / 255.0))[0]
    assert np.abs(ours.numpy() - expected).max() <= 1  # PIL truncates, we round


@pytest.mark.parametrize("op", ["brightness", "color", "contrast", "sharpness"])
@pytest.mark.parametrize("channels", [1, 3])
def test_enhance_factor_one_is_identity(op, channels):
    x = levels_image(3, channels, 6, 7, seed=7)
    out = getattr(ops, op)(x, torch.ones(3))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)  # 1 ulp of blend rounding is allowed
    assert torch.equal(as_levels(out), as_levels(x))


def test_brightness_zero_is_black_and_factor_scales():
    x = levels_image(2, 3, 4, 4)
    out = ops.brightness(x, torch.tensor([0.0, 0.5]))
    assert torch.equal(out[0], torch.zeros_like(x[0]))
    torch.testing.assert_close(out[1], x[1] * 0.5)


def test_color_on_gray_is_identity():
    x = levels_image(3, 1, 5, 5)
    assert torch.equal(ops.color(x, torch.tensor([0.0, 0.3, 1.9])), x)


def test_color_zero_gives_gray():
    x = levels_image(1, 3, 4, 4)
    out = ops.color(x, torch.zeros(1))
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(out[:, c], gray)


def test_contrast_zero_gives_mean_gray():
    x = levels_image(2, 3, 4, 5, seed=8)
    out = ops.contrast(x, torch.zeros(2))
    for i in range(2):
        mean = (0.299 * x[i, 0] + 0.587 * x[i, 1] + 0.114 * x[i, 2]).mean()
        torch.testing.assert_close(out[i], torch.full_like(out[i], float(mean)))
    gray = levels_image(1, 1, 4, 4, seed=9)
    torch.testing.assert_close(ops.contrast(gray, torch.zeros(1)), torch.full_like(gray, float(gray.mean())))


def test_sharpness_keeps_the_border_and_smooths_inside():
    x = levels_image(1, 1, 5, 5, seed=10)
    out = ops.sharpness(x, torch.zeros(1))
    assert torch.equal(out[..., 0, :], x[..., 0, :]) and torch.equal(out[..., :, -1], x[..., :, -1])
    k = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    expected = (x[0, 0, 1:4, 1:4] * k).sum()
    torch.testing.assert_close(out[0, 0, 2, 2], expected)


def test_enhance_results_are_clamped():
    x = levels_image(1, 3, 4, 4)
    for op in (ops.brightness, ops.color, ops.contrast, ops.sharpness):
        out = op(x, torch.tensor([3.0]))
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_cutout_fills_exactly_a_square():
    x = levels_image(2, 3, 8, 8, seed=11)
    out = ops.cutout(x, torch.tensor([2.0, 3.0]), torch.tensor([4.0, 4.0]), torch.tensor([4.0, 2.0]), fill=0.5)
    box = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    box[0, :, 3:5, 3:5] = True  # side 2 centred at (4, 4)
    box[1, :, 2:5, 0:3] = True  # side 3 centred at (4, 2)
    box = box.expand_as(x)
    assert (out[box] == 0.5).all()
    assert torch.equal(out[~box], x[~box])
    assert int(box[0, 0].sum()) == 4 and int(box[1, 0].sum()) == 9


def test_cutout_size_zero_changes_nothing():
    x = levels_image(2, 1, 6, 6)
    assert torch.equal(ops.cutout(x, torch.zeros(2), torch.full((2,), 3.0), torch.full((2,), 3.0)), x)


# ---------------------------------------------------------------- policies


POLICIES = {
    "weak": lambda: Weak(),
    "randaugment": lambda: RandAugment(),
    "strong": lambda: Strong(),
    "identity": lambda: Identity(),
}


def sample_batch(dtype: torch.dtype, c: int, h: int, w: int, b: int = 4, seed: int = 0) -> torch.Tensor:
    x = torch.randint(0, 256, (b, c, h, w), generator=gen(seed), dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("hw", [(8, 8), (28, 28), (32, 32), (20, 28)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_policy_output_contract(name, dtype, c, hw):
    x = sample_batch(dtype, c, *hw)
    before = x.clone()
    out = POLICIES[name]()(x, gen(1))
    assert out.dtype == torch.float32
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    if dtype == torch.uint8:
        assert torch.equal(x, before)  # the caller's batch is left alone


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_deterministic_under_seed(name):
    x = sample_batch(torch.uint8, 3, 16, 16, b=8)
    policy = POLICIES[name]()
    a, b = policy(x, gen(42)), policy(x, gen(42))
    assert torch.equal(a, b)
    if name != "identity":
        assert not torch.equal(a, policy(x, gen(43)))


def test_identity_policy_is_unit_float():
    x = sample_batch(torch.uint8, 3, 5, 5)
    assert torch.equal(Identity()(x, gen()), x.float() / 255.0)


def test_strong_is_independent_per_sample():
    x = sample_batch(torch.uint8, 3, 16, 16, b=1).repeat(64, 1, 1, 1)
    out = Strong()(x, gen(0))
    distinct = {tuple(as_levels(o).flatten().tolist()) for o in out}
    assert len(distinct) >= 55


def test_randaugment_zero_ops_no_cutout_is_identity():
    x = sample_batch(torch.uint8, 3, 12, 12, b=6)
    assert torch.equal(RandAugment(n_ops=0, cutout=0)(x, gen(3)), x.float() / 255.0)


def test_randaugment_identity_op_is_identity():
    x = sample_batch(torch.float32, 1, 12, 10, b=6)
    assert torch.equal(RandAugment(ops_names=["identity"], cutout=0)(x, gen(3)), x)


def test_randaugment_cutout_only():
    x = torch.zeros(16, 1, 10, 10)
    out = RandAugment(ops_names=["identity"], cutout=1.0, fill=0.5)(x, gen(5))
    assert set(out.unique().tolist()) <= {0.0, 0.5}
    assert (out == 0.5).flatten(1).any(1).sum() >= 8  # most images got a visible patch


def test_randaugment_single_op_is_that_op():
    x = sample_batch(torch.float32, 3, 8, 8, b=5)
    out = RandAugment(n_ops=1, ops_names=["autocontrast"], cutout=0)(x.clone(), gen(0))
    assert torch.equal(out, ops.autocontrast(x))


def test_randaugment_does_not_modify_float_input():
    x = sample_batch(torch.float32, 3, 8, 8, b=4)
    before = x.clone()
    out = RandAugment(ops_names=["solarize", "posterize"], cutout=0)(x, gen(0))
    assert not torch.equal(out, before)  # the ops did something...
    assert torch.equal(x, before)  # ...but not to the caller's tensor


def test_weak_without_flip_or_pad_is_identity():
    x = sample_batch(torch.uint8, 3, 9, 7, b=5)
    assert torch.equal(Weak(hflip=False, pad_fraction=0)(x, gen(1)), x.float() / 255.0)


def _pad_crop_candidates(img: torch.Tensor, pad: int) -> set:
    """Every output Weak's pad-and-crop could make from one (C, H, W) image."""
    n = 2 * pad + 1
    dy = torch.arange(n).repeat_interleave(n)
    dx = torch.arange(n).repeat(n)
    crops = ops.pad_crop(img[None].expand(n * n, -1, -1, -1), pad, dy, dx)
    return {tuple(as_levels(c).flatten().tolist()) for c in crops}


def test_weak_without_hflip_never_mirrors():
    img = sample_batch(torch.float32, 1, 16, 16, b=1)[0]
    pad = 2  # round(0.125 * 16)
    plain = _pad_crop_candidates(img, pad)
    mirrored = _pad_crop_candidates(img.flip(-1), pad)
    assert not plain & mirrored  # a random image: every mirrored crop is distinguishable
    batch = img[None].repeat(64, 1, 1, 1)
    no_flip = Weak(hflip=False)(batch, gen(0))
    assert all(tuple(as_levels(o).flatten().tolist()) in plain for o in no_flip)
    with_flip = [tuple(as_levels(o).flatten().tolist()) for o in Weak(hflip=True)(batch, gen(0))]
    assert all(o in plain or o in mirrored for o in with_flip)
    n_mirrored = sum(o in mirrored for o in with_flip)
    assert 15 <= n_mirrored <= 49  # about half


def test_weak_bad_pad_fraction():
    with pytest.raises(ValueError, match="pad_fraction"):
        Weak(pad_fraction=1.0)


def test_make_views_respects_hflip():
    views = make_views(hflip=False)
    assert set(views) == {"none", "weak", "strong", "crop"}
    assert views["weak"].hflip is False and views["strong"].weak.hflip is False and views["crop"].hflip is False
    assert make_views()["weak"].hflip is True


def test_all_ops_each_run():
    x = sample_batch(torch.uint8, 3, 20, 24, b=6)
    for name in ALL_OPS:
        out = RandAugment(n_ops=1, ops_names=[name], cutout=0)(x, gen(2))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1, name
        if name != "identity":
            assert not torch.equal(out, x.float() / 255.0), name


@settings(max_examples=25, deadline=None, database=None)
@given(
    b=st.integers(1, 6),
    c=st.sampled_from([1, 3]),
    h=st.integers(4, 40),
    w=st.integers(4, 40),
    dtype=st.sampled_from([torch.uint8, torch.float32]),
    seed=st.integers(0, 2**31 - 1),
)
def test_strong_output_property(b, c, h, w, dtype, seed):
    torch.set_num_threads(1)
    x = sample_batch(dtype, c, h, w, b=b, seed=seed)
    out = Strong()(x, gen(seed))
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", list(POLICIES))
def test_rank_3_input_rejected(name):
    with pytest.raises(ValueError, match="rank"):
        POLICIES[name]()(torch.zeros(3, 8, 8), gen())


@pytest.mark.parametrize("name", list(POLICIES))
def test_empty_batch_rejected(name):
    with pytest.raises(ValueError, match="empty"):
        POLICIES[name]()(torch.zeros(0, 3, 8, 8), gen())


@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_bad_dtype_rejected(name, dtype):
    with pytest.raises(TypeError, match="dtype"):
        POLICIES[name]()(torch.zeros(2, 3, 8, 8, dtype=dtype), gen())


def test_non_tensor_rejected():
    with pytest.raises(TypeError, match="Tensor"):
        Strong()(np.zeros((2, 3, 8, 8), np.float32), gen())


def test_unknown_op_name_rejected():
    with pytest.raises(ValueError, match="'rotat'"):
        RandAugment(ops_names=["rotat"])


@pytest.mark.parametrize("kwargs, fragment", [({"ops_names": []}, "at least one"), ({"n_ops": -1}, "n_ops"), ({"cutout": 1.5}, "cutout")])
def test_randaugment_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RandAugment(**kwargs)


# ---------------------------------------------------------------- feature views


def test_feature_noise_zero_is_identity():
    x = torch.randn(10, 4, generator=gen(0))
    assert torch.equal(FeatureNoise(torch.ones(4), noise=0.0, dropout=0.0)(x, gen(1)), x)
    assert torch.equal(make_feature_views(torch.ones(4))["none"](x, gen(1)), x)


def test_feature_dropout_rate():
    x = torch.ones(400, 500)
    out = FeatureNoise(torch.ones(500), noise=0.0, dropout=0.3)(x, gen(2))
    zero_fraction = (out == 0).float().mean().item()
    assert abs(zero_fraction - 0.3) < 0.01
    assert set(out.unique().tolist()) == {0.0, 1.0}  # kept features are not rescaled or noised


def test_feature_noise_scale_is_per_feature():
    x = torch.zeros(4000, 2)
    out = FeatureNoise(torch.tensor([1.0, 10.0]), noise=0.5, dropout=0.0)(x, gen(3))
    std = out.std(0)
    assert abs(std[0].item() - 0.5) < 0.05 and abs(std[1].item() - 5.0) < 0.5


def test_feature_noise_deterministic():
    x = torch.randn(20, 6, generator=gen(0))
    view = FeatureNoise(torch.ones(6), noise=0.2, dropout=0.2)
    a, b = view(x, gen(7)), view(x, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, view(x, gen(8)))
    assert not torch.equal(a, x)


def test_feature_noise_bad_input():
    view = FeatureNoise(torch.ones(3))
    with pytest.raises(ValueError, match="shape"):
        view(torch.zeros(3), gen())
    with pytest.raises(ValueError, match="shape"):
        view(torch.zeros(0, 3), gen())
    with pytest.raises(ValueError, match="dropout"):
        FeatureNoise(torch.ones(3), dropout=1.0)
    with pytest.raises(ValueError, match="noise"):
        FeatureNoise(torch.ones(3), noise=-0.1)


def test_randaugment_colour_ops_run_in_each_images_drawn_order():
    """The batch is sorted by op per slot for speed; each image must still get its own ops, in its own order."""
    names = ["solarize", "posterize", "contrast", "brightness", "equalize", "autocontrast"]  # order-sensitive pairs
    x = torch.randint(0, 256, (40, 3, 9, 9), dtype=torch.uint8).float() / 255.0
    n_ops = 3
    out = RandAugment(n_ops=n_ops, ops_names=names, cutout=0)(x, gen(11))
    g = gen(11)  # the same draws, in the order RandAugment makes them
    choice = torch.randint(len(names), (40, n_ops), generator=g)
    mag = torch.rand(40, n_ops, generator=g)
    sign = torch.randint(2, (40, n_ops), generator=g).float() * 2 - 1
    for i in range(40):
        img = x[i : i + 1]
        for slot in range(n_ops):
            op = COLOR_OPS[names[int(choice[i, slot])]]
            img = op(img, mag[i : i + 1, slot], sign[i : i + 1, slot])
        assert torch.allclose(out[i : i + 1], img, atol=1e-6), f"image {i}"


def test_strong_fill_on_uint8_is_one_grey_level_for_warp_and_cutout():
    """uint8 batches are warped as uint8, so their fill is the nearest 8-bit level (PIL's 128), Cutout's too."""
    x = torch.zeros(32, 1, 12, 12, dtype=torch.uint8)
    warped = Strong(hflip=False, pad_fraction=0.0, n_ops=1, ops_names=["translate_x"], cutout=0)(x, gen(0))
    assert set(warped.unique().tolist()) == {0.0, torch.tensor(128 / 255).item()}
    cut = Strong(hflip=False, pad_fraction=0.0, n_ops=1, ops_names=["identity"], cutout=1.0)(x, gen(0))
    assert set(cut.unique().tolist()) == {0.0, torch.tensor(128 / 255).item()}
    as_float = Strong(hflip=False, pad_fraction=0.0, n_ops=1, ops_names=["translate_x"], cutout=0)(x.float(), gen(0))
    assert set(as_float.unique().tolist()) == {0.0, 0.5}  # float input keeps the exact fill


def test_equalize_clamps_out_of_range_input_and_rounds_like_posterize():
    x = torch.linspace(-0.2, 1.2, 400).view(1, 1, 20, 20)
    out = ops.equalize(x)  # must not fail or leak into another channel's histogram
    assert out.min() >= 0 and out.max() <= 1
    tie = torch.full((1, 1, 16, 16), 100.5 / 255)
    tie[..., :8, :] = 10 / 255
    assert torch.equal(ops.equalize(tie), ops.equalize((tie * 255).round() / 255))


def test_keep_freed_memory_is_idempotent():
    from fewlabels.utils.memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert isinstance(first, bool)


# ---- SimCLR's resized-crop view


def test_resized_crop_at_full_scale_without_jitter_is_the_identity_or_its_mirror():
    x = torch.randint(0, 256, (16, 1, 9, 7), generator=gen(3), dtype=torch.uint8)
    exact = ResizedCrop(hflip=False, scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=0.0)
    torch.testing.assert_close(exact(x, gen()), x.float() / 255, atol=1e-5, rtol=0)
    flipping = ResizedCrop(hflip=True, scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=0.0)
    out, ref = flipping(x, gen()), x.float() / 255
    same = [(out[i] - ref[i]).abs().max() < 1e-5 for i in range(16)]
    mirrored = [(out[i] - ref[i].flip(-1)).abs().max() < 1e-5 for i in range(16)]
    assert all(a or b for a, b in zip(same, mirrored)) and 0 < sum(mirrored) < 16


def test_resized_crop_zooms_in():
    """A square crop of a quarter of the area spans half the width: on a ramp image (pixel j holds j / 15) the 16
    output pixels cover 7.5 input pixels, a value span of 0.5 (up to a quarter pixel at each side where the crop
    touches the border). A zoom-out, a flip or a crop of the wrong size would not."""
    x = (torch.arange(16.0) / 15).expand(64, 1, 16, 16).clone()
    out = ResizedCrop(hflip=False, scale=(0.25, 0.25), ratio=(1.0, 1.0), jitter=0.0)(x, gen())
    span = out[..., -1] - out[..., 0]  # (64, 1, 16): every row of every crop
    assert span.min() >= 0.5 - 0.5 / 15 - 1e-5 and span.max() <= 0.5 + 1e-5
    assert (out[..., 1:] >= out[..., :-1] - 1e-6).all()  # increasing: not mirrored
    starts = out[:, 0, 0, 0]
    assert starts.min() < 0.1 and starts.max() > 0.4  # the crop's position varies over the image


def test_resized_crop_jitter_scales_brightness_within_its_range():
    x = torch.full((200, 1, 4, 4), 0.5)  # a flat image: contrast leaves it, brightness multiplies it
    out = ResizedCrop(hflip=False, scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=0.4, jitter_p=1.0)(x, gen())
    level = out[:, 0, 0, 0]
    assert level.min() >= 0.5 * 0.6 - 1e-6 and level.max() <= 0.5 * 1.4 + 1e-6
    assert level.std() > 0.05  # each image draws its own factor
    none = ResizedCrop(hflip=False, scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=0.4, jitter_p=0.0)(x, gen())
    torch.testing.assert_close(none, x)


def test_resized_crop_turns_colour_images_grey_and_repeats_with_the_generator():
    x = torch.rand(32, 3, 8, 8, generator=gen(5))
    grey = ResizedCrop(gray_p=1.0)(x, gen())
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    view = ResizedCrop()
    assert torch.equal(view(x, gen(7)), view(x, gen(7))) and not torch.equal(view(x, gen(7)), view(x, gen(8)))


@pytest.mark.parametrize("kwargs", [{"scale": (0.0, 1.0)}, {"scale": (0.5, 0.2)}, {"ratio": (0.0, 1.0)}])
def test_resized_crop_refuses_bad_ranges(kwargs):
    with pytest.raises(ValueError):
        ResizedCrop(**kwargs)
