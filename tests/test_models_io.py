"""Model registry and atomic file writes."""

import os

import pytest
import torch

from fewlabels import models
from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, check_writable_dir


@pytest.mark.parametrize("name, shape", [("cnn", (1, 28, 28)), ("cnn-wide", (3, 32, 32)), ("cnn", (1, 8, 8)), ("cnn-small", (1, 28, 28)),
                                         ("wrn-28-2", (3, 32, 32)), ("mlp", (20,))])
def test_models_return_logits_and_features(name, shape):
    model = models.get(name, shape, num_classes=7).eval()
    logits, feats = model(torch.rand(3, *shape))
    assert logits.shape == (3, 7)
    assert feats.shape == (3, model.feature_dim)


def test_uint8_input_equals_float_input_and_normalization_is_saved():
    model = models.get("cnn", (1, 8, 8), 3).eval()
    model.set_normalization(torch.tensor([0.3]), torch.tensor([0.2]))
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.allclose(model(x)[0], model(x.float() / 255)[0], atol=1e-5)
    state = model.state_dict()
    assert state["mean"].item() == pytest.approx(0.3) and state["std"].item() == pytest.approx(0.2)


def test_model_registry_errors():
    with pytest.raises(FewLabelsError, match="did you mean 'cnn'"):
        models.get("cnnn", (1, 8, 8), 2)
    with pytest.raises(FewLabelsError, match="does not take feature vectors"):
        models.get("cnn", (10,), 2)
    with pytest.raises(FewLabelsError, match="does not take images"):
        models.get("mlp", (1, 8, 8), 2)


def test_atomic_writes_leave_no_temp_files_and_readable_modes(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_torch_save(tmp_path / "b.pt", {"w": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.pt"]
    assert os.stat(tmp_path / "a.json").st_mode & 0o044  # not private like mkstemp's default
    assert torch.load(tmp_path / "b.pt", weights_only=True)["w"].sum() == 2


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_check_writable_dir_creates_nothing(tmp_path):
    check_writable_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
