"""Transformation groups (exact, per-sample) and the augmentation preview."""

import numpy as np
import pytest
import torch
from PIL import Image

from fewlabels.augment import get_group
from fewlabels.augment.preview import preview_grid
from fewlabels.cli import main


def test_rot4_applies_the_rotation_each_sample_asks_for():
    x = torch.arange(4 * 1 * 3 * 3, dtype=torch.float32).view(4, 1, 3, 3)
    out = get_group("rot4").apply(x, torch.tensor([0, 1, 2, 3]))
    for k in range(4):
        assert torch.equal(out[k], torch.rot90(x[k], k, dims=(1, 2)))


def test_hflip_group_and_dihedral_elements():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.uint8).view(2, 1, 2, 2)
    out = get_group("hflip").apply(x, torch.tensor([1, 0]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])
    d8 = get_group("rot4-hflip")
    assert len(d8) == 8
    out = d8.apply(x, torch.tensor([6, 3]))
    assert torch.equal(out[0], torch.rot90(x[0].flip(-1), 2, dims=(1, 2)))
    assert torch.equal(out[1], torch.rot90(x[1], 3, dims=(1, 2)))


def test_group_all_is_element_major_and_lossless():
    x = torch.rand(3, 2, 5, 5)
    g = get_group("rot4")
    every = g.all(x)
    assert every.shape == (12, 2, 5, 5)
    assert torch.equal(every[3:6], torch.rot90(x, 1, dims=(2, 3)))
    # applying the inverse rotation brings every element back exactly
    back = g.apply(every, (4 - torch.arange(4).repeat_interleave(3)) % 4)
    assert torch.equal(back, x.repeat(4, 1, 1, 1))


def test_group_bad_input():
    with pytest.raises(ValueError, match="square images"):
        get_group("rot4").apply(torch.zeros(1, 1, 4, 6), torch.tensor([1]))
    get_group("rot2").apply(torch.zeros(1, 1, 4, 6), torch.tensor([1]))  # 180 degrees fits any shape
    with pytest.raises(ValueError, match="0..3"):
        get_group("rot4").apply(torch.zeros(1, 1, 4, 4), torch.tensor([4]))
    with pytest.raises(ValueError, match="unknown transformation group"):
        get_group("rot3")


def test_preview_grid_shows_originals_then_views():
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    grid = preview_grid(x, strong_views=2, scale=2, gap=1)
    assert grid.shape == (3 * 17 + 1, 4 * 17 + 1, 3) and grid.dtype == np.uint8
    first = grid[1:17, 1:17, 0]  # top-left cell is the first original, scaled 2x
    assert np.array_equal(first, x[0, 0].repeat_interleave(2, 0).repeat_interleave(2, 1).numpy())


def test_augment_preview_command_writes_a_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["augment-preview", "--dataset", "digits", "--out", str(out), "--n", "4"]) == 0
    img = Image.open(out)
    assert img.size[1] > img.size[0] / 2 and img.mode == "RGB"
    assert main(["augment-preview", "--dataset", "digits", "--out", str(tmp_path / "grid.jpg")]) == 2
    assert "must name a .png file" in capsys.readouterr().err
