"""The data layer: Fashion-MNIST IDX files, digits, user arrays, image folders, the split."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import fewlabels.data as fldata
from fewlabels.data import digits, fashion_mnist, folder, from_arrays, split
from fewlabels.errors import FewLabelsError

# ---------------------------------------------------------------- Fashion-MNIST

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


def idx_images(images: np.ndarray, magic: int = 0x00000803) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", magic, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 0x00000801) -> bytes:
    return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()


def write_fake_fashion(folder_: Path, n_train: int = 6, n_test: int = 4, gz: bool = False, seed: int = 0) -> dict:
    """Four tiny IDX files; returns the arrays written so tests can compare."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    payloads = {
        TRAIN_IMAGES: idx_images(arrays["x_train"]),
        TRAIN_LABELS: idx_labels(arrays["y_train"]),
        TEST_IMAGES: idx_images(arrays["x_test"]),
        TEST_LABELS: idx_labels(arrays["y_test"]),
    }
    folder_.mkdir(parents=True, exist_ok=True)
    for name, data in payloads.items():
        if gz:
            (folder_ / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder_ / name).write_bytes(data)
    return arrays


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $FEWLABELS_DATA, a fake empty home, and no /usr/share/datasets: only what a test passes."""
    monkeypatch.delenv("FEWLABELS_DATA", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(Path, "home", lambda: home)
    original = fashion_mnist.search_roots
    monkeypatch.setattr(
        fashion_mnist,
        "search_roots",
        lambda data_dir=None: [r for r in original(data_dir) if r != Path("/usr/share/datasets")],
    )
    return home


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist_loads_what_was_written(tmp_path, isolated, gz):
    arrays = write_fake_fashion(tmp_path / "fm", gz=gz)
    src = fashion_mnist.load(tmp_path / "fm")
    assert src.train.x.dtype == torch.uint8 and src.test.x.dtype == torch.uint8
    assert src.train.x.shape == (6, 1, 28, 28)
    assert src.test.x.shape == (4, 1, 28, 28)
    assert src.train.y.dtype == torch.int64 and src.test.y.dtype == torch.int64
    assert np.array_equal(src.train.x[:, 0].numpy(), arrays["x_train"])
    assert np.array_equal(src.test.x[:, 0].numpy(), arrays["x_test"])
    assert src.train.y.tolist() == arrays["y_train"].tolist()
    assert src.test.y.tolist() == arrays["y_test"].tolist()
    assert src.classes == fashion_mnist.CLASSES
    assert len(src.classes) == 10 and src.classes[0] == "T-shirt/top" and src.classes[9] == "Ankle boot"
    assert src.test.classes == src.classes
    assert src.origin == str(tmp_path / "fm")
    assert src.hflip is True


def test_fashion_mnist_explicit_dir_beats_env(tmp_path, isolated, monkeypatch):
    write_fake_fashion(tmp_path / "explicit", n_train=3, seed=1)
    write_fake_fashion(tmp_path / "env", n_train=5, seed=2)
    monkeypatch.setenv("FEWLABELS_DATA", str(tmp_path / "env"))
    src = fashion_mnist.load(tmp_path / "explicit")
    assert len(src.train) == 3
    assert src.origin == str(tmp_path / "explicit")


def test_fashion_mnist_env_var_is_used(tmp_path, isolated, monkeypatch):
    arrays = write_fake_fashion(tmp_path / "env", n_train=5, seed=2)
    monkeypatch.setenv("FEWLABELS_DATA", str(tmp_path / "env"))
    src = fashion_mnist.load()
    assert src.origin == str(tmp_path / "env")
    assert src.train.y.tolist() == arrays["y_train"].tolist()
    # also through the name registry
    assert len(fldata.load("fashion-mnist").train) == 5
    assert fldata.where("fashion-mnist") == str(tmp_path / "env")


def test_fashion_mnist_env_beats_user_cache(tmp_path, isolated, monkeypatch):
    write_fake_fashion(isolated / ".cache" / "fewlabels", n_train=2, seed=3)
    write_fake_fashion(tmp_path / "env", n_train=5, seed=2)
    assert len(fashion_mnist.load().train) == 2  # the cache is found without the env var
    monkeypatch.setenv("FEWLABELS_DATA", str(tmp_path / "env"))
    assert len(fashion_mnist.load().train) == 5


def test_fashion_mnist_search_roots_order(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setattr(Path, "home", lambda: home)
    monkeypatch.setenv("FEWLABELS_DATA", str(tmp_path / "env"))
    assert fashion_mnist.search_roots(tmp_path / "x") == [
        tmp_path / "x",
        tmp_path / "env",
        home / ".cache" / "fewlabels",
        Path("/usr/share/datasets"),
    ]


@pytest.mark.parametrize("sub", ["fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_subfolder_is_found(tmp_path, isolated, sub):
    write_fake_fashion(tmp_path / "root" / sub, n_train=3, gz=True)
    src = fashion_mnist.load(tmp_path / "root")
    assert len(src.train) == 3
    assert src.origin == str(tmp_path / "root" / sub)
    assert fashion_mnist.find(tmp_path / "root") == tmp_path / "root" / sub


def test_fashion_mnist_incomplete_folder_is_not_found(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm")
    (tmp_path / "fm" / TEST_LABELS).unlink()
    assert fashion_mnist.find(tmp_path / "fm") is None


def test_fashion_mnist_missing_says_where_and_how(tmp_path, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FewLabelsError) as exc:
        fashion_mnist.load(empty)
    msg = str(exc.value)
    assert "not found" in msg
    assert str(empty) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert fldata.where("fashion-mnist", empty) is None


def test_fashion_mnist_explicit_dir_does_not_fall_back(tmp_path, isolated, monkeypatch):
    """A user who names a folder means that folder: files elsewhere must not be picked silently."""
    write_fake_fashion(tmp_path / "env", n_train=3)
    monkeypatch.setenv("FEWLABELS_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    assert fashion_mnist.find(tmp_path / "empty") is None
    assert fashion_mnist.find() == tmp_path / "env"


def test_fashion_mnist_missing_without_dir_lists_every_place(isolated):
    with pytest.raises(FewLabelsError) as exc:
        fashion_mnist.load()
    assert str(isolated / ".cache" / "fewlabels") in str(exc.value)


def _load_expect_error(tmp_path, bad_file: Path) -> str:
    with pytest.raises(FewLabelsError) as exc:
        fashion_mnist.load(tmp_path / "fm")
    assert str(bad_file) in str(exc.value)
    return str(exc.value)


def test_fashion_mnist_wrong_magic(tmp_path, isolated):
    arrays = write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TRAIN_IMAGES
    bad.write_bytes(idx_images(arrays["x_train"], magic=0x00000801))
    msg = _load_expect_error(tmp_path, bad)
    assert "magic" in msg and "0x00000801" in msg and "0x00000803" in msg


def test_fashion_mnist_labels_with_image_magic(tmp_path, isolated):
    arrays = write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TEST_LABELS
    bad.write_bytes(idx_labels(arrays["y_test"], magic=0x00000803))
    assert "magic" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_truncated_payload(tmp_path, isolated):
    arrays = write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TRAIN_IMAGES
    bad.write_bytes(idx_images(arrays["x_train"])[:-100])
    msg = _load_expect_error(tmp_path, bad)
    assert "truncated" in msg
    assert str(6 * 28 * 28) in msg  # what the header promises


def test_fashion_mnist_truncated_header(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TRAIN_IMAGES
    bad.write_bytes(struct.pack(">II", 0x00000803, 6))  # promises 3 dims, holds 1
    assert "truncated" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_tiny_file(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TRAIN_LABELS
    bad.write_bytes(b"\x00\x00")
    assert "too short" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_gzip_that_is_not_gzip(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm", gz=True)
    bad = tmp_path / "fm" / (TRAIN_IMAGES + ".gz")
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    assert "corrupt" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_gzip_cut_short(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm", gz=True)
    bad = tmp_path / "fm" / (TRAIN_IMAGES + ".gz")
    bad.write_bytes(bad.read_bytes()[:-40])
    assert "corrupt" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_gzip_with_damaged_stream(tmp_path, isolated):
    write_fake_fashion(tmp_path / "fm", gz=True)
    bad = tmp_path / "fm" / (TRAIN_IMAGES + ".gz")
    data = bytearray(bad.read_bytes())
    for i in range(12, 20):  # just after the 10-byte gzip header: the deflate block header
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert "corrupt" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_count_mismatch(tmp_path, isolated):
    arrays = write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TRAIN_LABELS
    bad.write_bytes(idx_labels(arrays["y_train"][:-1]))
    msg = _load_expect_error(tmp_path, bad)
    assert str(tmp_path / "fm" / TRAIN_IMAGES) in msg
    assert "6 images" in msg and "5 labels" in msg


def test_fashion_mnist_label_out_of_range(tmp_path, isolated):
    arrays = write_fake_fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / TEST_LABELS
    y = arrays["y_test"].copy()
    y[1] = 10
    bad.write_bytes(idx_labels(y))
    assert "10" in _load_expect_error(tmp_path, bad)


def test_fashion_mnist_raw_file_preferred_over_gz(tmp_path, isolated):
    raw = write_fake_fashion(tmp_path / "fm", seed=5)
    write_fake_fashion(tmp_path / "fm", gz=True, seed=6)
    src = fashion_mnist.load(tmp_path / "fm")
    assert src.train.y.tolist() == raw["y_train"].tolist()


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_src():
    return digits.load()


def test_digits_shapes_and_values(digits_src):
    tr, te = digits_src.train, digits_src.test
    assert tr.x.dtype == torch.uint8 and te.x.dtype == torch.uint8
    assert tr.x.shape[1:] == (1, 8, 8) and te.x.shape[1:] == (1, 8, 8)
    assert len(tr) + len(te) == 1797
    assert (len(tr), len(te)) == (1347, 450)
    allx = torch.cat([tr.x, te.x])
    assert int(allx.min()) == 0 and int(allx.max()) == 255
    assert len(torch.unique(allx)) == 17  # the 0..16 levels, each mapped to its own 8-bit level
    assert tr.y.dtype == torch.int64
    assert digits_src.classes == [str(c) for c in range(10)]
    assert digits_src.hflip is False


def test_digits_test_split_is_stratified(digits_src):
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(digits_src.test.y.numpy(), minlength=10)
    train_counts = np.bincount(digits_src.train.y.numpy(), minlength=10)
    assert np.array_equal(test_counts + train_counts, per_class)
    assert np.array_equal(test_counts, np.round(per_class * 0.25).astype(int))


def test_digits_test_split_is_fixed(digits_src):
    again = digits.load()
    assert torch.equal(again.test.x, digits_src.test.x)
    assert torch.equal(again.test.y, digits_src.test.y)
    assert torch.equal(again.train.y, digits_src.train.y)
    assert fldata.load("digits").test.y.tolist() == digits_src.test.y.tolist()


# ---------------------------------------------------------------- from_arrays


def test_from_arrays_nhw():
    x = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    ds = from_arrays(x, [0, 1])
    assert ds.x.shape == (2, 1, 4, 5) and ds.x.dtype == torch.uint8
    assert np.array_equal(ds.x[:, 0].numpy(), x)
    assert ds.classes == ["0", "1"] and ds.is_image


def test_from_arrays_nhwc():
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    ds = from_arrays(x, [0, 1])
    assert ds.x.shape == (2, 3, 4, 5) and ds.x.dtype == torch.uint8
    assert np.array_equal(ds.x.numpy(), x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("c", [1, 3])
def test_from_arrays_nchw(c):
    x = np.random.default_rng(c).integers(0, 256, (2, c, 6, 5), dtype=np.uint8)
    ds = from_arrays(x, np.array([1, 0]))
    assert ds.x.shape == (2, c, 6, 5) and ds.x.dtype == torch.uint8
    assert np.array_equal(ds.x.numpy(), x)


def test_from_arrays_float_unit_images_are_scaled():
    x = np.array([[[0.0, 0.5], [1.0, 0.25]]], dtype=np.float32)
    ds = from_arrays(x, [0], classes=["a", "b"])
    assert ds.x.dtype == torch.uint8
    assert ds.x[0, 0].tolist() == [[0, 128], [255, 64]]


def test_from_arrays_float_0_255_images_kept():
    x = np.array([[[0.0, 12.0], [255.0, 100.4]]])
    ds = from_arrays(x, [0], classes=["a", "b"])
    assert ds.x[0, 0].tolist() == [[0, 12], [255, 100]]


def test_from_arrays_features():
    x = np.arange(12, dtype=np.int64).reshape(4, 3)
    ds = from_arrays(x, [0, 1, -1, 2])
    assert ds.x.dtype == torch.float32 and ds.x.shape == (4, 3)
    assert ds.x.tolist() == x.astype(np.float32).tolist()
    assert not ds.is_image
    assert ds.y.tolist() == [0, 1, -1, 2]
    assert ds.classes == ["0", "1", "2"]


def test_from_arrays_keeps_unlabeled_and_classes():
    ds = from_arrays(np.zeros((3, 2)), [-1, -1, 0], classes=["x", "y"])
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [-1, -1, 0]
    assert ds.classes == ["x", "y"] and ds.num_classes == 2
    all_unlabeled = from_arrays(np.zeros((2, 2)), [-1, -1], classes=["x", "y"])
    assert all_unlabeled.y.tolist() == [-1, -1]


def test_from_arrays_torch_input():
    x = torch.rand(3, 1, 4, 4)
    ds = from_arrays(x, torch.tensor([0, 1, 0]))
    assert ds.x.shape == (3, 1, 4, 4) and ds.x.dtype == torch.uint8
    assert torch.equal(ds.x, torch.from_numpy(np.rint(x.double().numpy() * 255).astype(np.uint8)))
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [0, 1, 0]
    feats = from_arrays(torch.ones(3, 2, dtype=torch.float64), torch.tensor([0, 1, 1]))
    assert feats.x.dtype == torch.float32


@pytest.mark.parametrize(
    "x, y, classes, fragment",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], None, "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], None, "row 0 holds Inf in column 1"),
        (np.full((2, 3, 3), np.nan), [0, 1], None, "NaN"),
        (np.zeros((2, 3)), np.array([0.0, 1.5]), None, "row 1 is 1.5"),
        (np.zeros((2, 3)), [0, -2], None, "-2"),
        (np.zeros((3, 3)), [0, 1], None, "3 rows"),
        (np.zeros((2, 3)), [-1, -1], None, "no labeled"),
        (np.zeros((2, 5, 5, 5), dtype=np.uint8), [0, 1], None, "(2, 5, 5, 5)"),
        (np.zeros((0, 4)), [], None, "empty"),
        (np.zeros((0, 4, 4)), [], None, "empty"),
        (np.zeros((2, 3)), [0, 2], ["a", "b"], "only 2 classes"),
        (-np.ones((2, 3, 3)), [0, 1], None, "negative"),
        (np.full((2, 3, 3), 300.0), [0, 1], None, "above 255"),
        (np.zeros((2, 3, 3, 3, 3)), [0, 1], None, "shape"),
    ],
    ids=[
        "nan-features",
        "inf-features",
        "nan-images",
        "float-y",
        "label-below-minus-1",
        "length-mismatch",
        "all-unlabeled-no-classes",
        "bad-4d-shape",
        "empty-features",
        "empty-images",
        "label-too-big",
        "negative-pixels",
        "pixels-above-255",
        "5d",
    ],
)
def test_from_arrays_errors(x, y, classes, fragment):
    with pytest.raises(FewLabelsError) as exc:
        from_arrays(x, y, classes=classes)
    assert fragment in str(exc.value)


# ---------------------------------------------------------------- image folders


def save_png(path: Path, value: int = 0, size=(4, 4), mode: str = "L") -> None:
    """A constant image of ``value`` (per channel for RGB), ``size`` = (width, height)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "L":
        arr = np.full((h, w), value, np.uint8)
    else:
        arr = np.zeros((h, w, 3), np.uint8)
        arr[..., 0] = value
        arr[..., 1] = 255 - value
        arr[..., 2] = 7
    Image.fromarray(arr, mode).save(path)


def make_tree(root: Path) -> None:
    save_png(root / "cat" / "a.png", 10)
    save_png(root / "cat" / "b.png", 20)
    save_png(root / "dog" / "a.png", 30)
    save_png(root / "dog" / "b.png", 40)
    save_png(root / "dog" / "c.png", 50)
    save_png(root / "unlabeled" / "u1.png", 60)
    save_png(root / "unlabeled" / "u2.png", 70)


def test_folder_labels_and_unlabeled(tmp_path):
    make_tree(tmp_path)
    src = folder.load(tmp_path)
    assert src.classes == ["cat", "dog"]
    assert src.train.x.shape == (7, 1, 4, 4) and src.train.x.dtype == torch.uint8
    # each file holds its own constant value, so the pixel identifies the file
    by_value = {int(v): int(lab) for v, lab in zip(src.train.x[:, 0, 0, 0], src.train.y)}
    assert by_value == {10: 0, 20: 0, 30: 1, 40: 1, 50: 1, 60: -1, 70: -1}
    assert src.test is None
    assert src.origin == str(tmp_path)


def test_folder_classes_sorted_and_hidden_files_ignored(tmp_path):
    save_png(tmp_path / "zebra" / "1.png", 1)
    save_png(tmp_path / "ant" / "1.png", 2)
    save_png(tmp_path / "mole" / "1.png", 3)
    (tmp_path / "zebra" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / ".hidden_dir").mkdir()
    src = folder.load(tmp_path)
    assert src.classes == ["ant", "mole", "zebra"]
    assert len(src.train) == 3
    assert {int(v): int(lab) for v, lab in zip(src.train.x[:, 0, 0, 0], src.train.y)} == {2: 0, 3: 1, 1: 2}


def test_data_load_accepts_a_folder_path(tmp_path):
    make_tree(tmp_path / "pets")
    src = fldata.load(str(tmp_path / "pets"))
    assert src.classes == ["cat", "dog"]
    assert len(src.train) == 7
    assert src.train.name == "pets"


def test_folder_mixed_sizes_use_most_common(tmp_path):
    save_png(tmp_path / "a" / "1.png", 10, size=(6, 4))
    save_png(tmp_path / "a" / "2.png", 20, size=(6, 4))
    save_png(tmp_path / "b" / "1.png", 30, size=(5, 5))
    save_png(tmp_path / "b" / "2.png", 40, size=(9, 3))
    src = folder.load(tmp_path)
    assert src.train.x.shape == (4, 1, 4, 6)  # (H, W) of the (width 6, height 4) majority
    assert (src.train.x[2] == 30).all() and (src.train.x[3] == 40).all()  # constants survive the resize


def test_folder_explicit_image_size(tmp_path):
    make_tree(tmp_path)
    src = folder.load(tmp_path, image_size=(3, 2))
    assert src.train.x.shape == (7, 1, 2, 3)


def test_folder_mixed_gray_and_rgb_gives_three_channels(tmp_path):
    save_png(tmp_path / "a" / "1.png", 10, mode="L")
    save_png(tmp_path / "a" / "2.png", 20, mode="L")
    save_png(tmp_path / "b" / "1.png", 200, mode="RGB")
    src = folder.load(tmp_path)
    assert src.train.x.shape == (3, 3, 4, 4)
    assert (src.train.x[0] == 10).all()  # gray replicated over RGB
    assert src.train.x[2, :, 0, 0].tolist() == [200, 55, 7]


def test_folder_all_gray_gives_one_channel(tmp_path):
    make_tree(tmp_path)
    assert folder.load(tmp_path).train.x.shape[1] == 1


def test_folder_train_test_layout(tmp_path):
    make_tree(tmp_path / "train")
    save_png(tmp_path / "test" / "cat" / "t.png", 90, size=(8, 8))
    save_png(tmp_path / "test" / "dog" / "t.png", 100, size=(8, 8))
    save_png(tmp_path / "test" / "dog" / "s.png", 110, size=(8, 8))
    src = folder.load(tmp_path)
    assert src.classes == ["cat", "dog"]
    assert len(src.train) == 7
    assert src.test is not None
    assert src.test.classes == ["cat", "dog"]
    assert src.test.x.shape == (3, 1, 4, 4)  # resized to the training size
    assert {int(v): int(lab) for v, lab in zip(src.test.x[:, 0, 0, 0], src.test.y)} == {90: 0, 100: 1, 110: 1}


def test_folder_test_with_unlabeled_is_rejected(tmp_path):
    make_tree(tmp_path / "train")
    save_png(tmp_path / "test" / "cat" / "t.png", 90)
    save_png(tmp_path / "test" / "unlabeled" / "t.png", 90)
    with pytest.raises(FewLabelsError, match="test"):
        folder.load(tmp_path)


def test_folder_test_with_unknown_class_is_rejected(tmp_path):
    make_tree(tmp_path / "train")
    save_png(tmp_path / "test" / "cow" / "t.png", 90)
    with pytest.raises(FewLabelsError, match="cow"):
        folder.load(tmp_path)


def _expect_folder_error(root: Path, offending: Path) -> str:
    with pytest.raises(FewLabelsError) as exc:
        folder.load(root)
    assert str(offending) in str(exc.value)
    return str(exc.value)


def test_folder_corrupt_png(tmp_path):
    make_tree(tmp_path)
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    assert "corrupt" in _expect_folder_error(tmp_path, bad)


def test_folder_truncated_png(tmp_path):
    make_tree(tmp_path)
    from PIL import Image

    good = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "cat" / "cut.png"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    good.unlink()
    assert "corrupt" in _expect_folder_error(tmp_path, bad)


def test_folder_non_image_file(tmp_path):
    make_tree(tmp_path)
    bad = tmp_path / "cat" / "notes.txt"
    bad.write_text("remember the milk")
    assert "not an image" in _expect_folder_error(tmp_path, bad)


def test_folder_non_image_file_in_unlabeled(tmp_path):
    make_tree(tmp_path)
    bad = tmp_path / "unlabeled" / "list.csv"
    bad.write_text("a,b")
    assert "not an image" in _expect_folder_error(tmp_path, bad)


def test_folder_empty_class_folder(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "eel").mkdir()
    (tmp_path / "eel" / ".DS_Store").write_bytes(b"x")
    assert "no images" in _expect_folder_error(tmp_path, tmp_path / "eel")


def test_folder_only_unlabeled(tmp_path):
    save_png(tmp_path / "unlabeled" / "1.png")
    assert "no class folders" in _expect_folder_error(tmp_path, tmp_path)


def test_folder_single_class(tmp_path):
    save_png(tmp_path / "cat" / "1.png")
    save_png(tmp_path / "unlabeled" / "1.png")
    msg = _expect_folder_error(tmp_path, tmp_path)
    assert "only one class" in msg and "cat" in msg


def test_folder_nonexistent_root(tmp_path):
    missing = tmp_path / "nope"
    assert "does not exist" in _expect_folder_error(missing, missing)


def test_data_load_nonexistent_path_is_an_error(tmp_path):
    with pytest.raises(FewLabelsError, match="does not exist"):
        fldata.load(str(tmp_path / "nope"))


def test_folder_16bit_grayscale_png_is_scaled(tmp_path):
    from PIL import Image

    for i, v in enumerate([0, 32768, 65535]):
        path = tmp_path / ("a" if i < 2 else "b") / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((4, 4), v, np.uint16)).save(path)
    x = folder.load(tmp_path).train.x
    assert x.shape == (3, 1, 4, 4)
    assert abs(int(x[1, 0, 0, 0]) - 128) <= 1  # mid-gray stays mid-gray


# ---------------------------------------------------------------- split


def labels(counts, unlabeled: int = 0) -> np.ndarray:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)] + [np.full(unlabeled, -1)])
    return np.random.default_rng(123).permutation(y)


def check_partition(s, n: int) -> None:
    lab, unl, val = set(s.labeled.tolist()), set(s.unlabeled.tolist()), set(s.validation.tolist())
    assert len(lab) == len(s.labeled) and len(unl) == len(s.unlabeled) and len(val) == len(s.validation)
    assert not lab & unl and not lab & val and not unl & val
    assert lab | unl | val == set(range(n))


def test_split_deterministic():
    y = labels([20, 20, 20], unlabeled=10)
    a = split(y, labels_per_class=3, val_per_class=2, seed=5)
    b = split(y, labels_per_class=3, val_per_class=2, seed=5)
    for f in ("labeled", "unlabeled", "validation"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    c = split(y, labels_per_class=3, val_per_class=2, seed=6)
    assert not np.array_equal(a.labeled, c.labeled)


def test_split_labels_per_class_is_stratified():
    y = labels([15, 9, 30, 4], unlabeled=7)
    s = split(y, labels_per_class=4, seed=0)
    assert np.bincount(y[s.labeled], minlength=4).tolist() == [4, 4, 4, 4]
    assert len(s.validation) == 0
    check_partition(s, len(y))


def test_split_validation_is_stratified():
    y = labels([15, 9, 30, 4], unlabeled=7)
    s = split(y, labels_per_class=2, val_per_class=2, seed=1)
    assert np.bincount(y[s.labeled], minlength=4).tolist() == [2, 2, 2, 2]
    assert np.bincount(y[s.validation], minlength=4).tolist() == [2, 2, 2, 2]
    check_partition(s, len(y))
    assert s.summary() == f"8 labeled, {len(y) - 16} unlabeled, 8 validation"


@pytest.mark.parametrize("seed", range(6))
def test_split_num_labels_not_divisible(seed):
    y = labels([20, 20, 20, 20], unlabeled=5)
    s = split(y, num_labels=10, seed=seed)
    counts = np.bincount(y[s.labeled], minlength=4)
    assert counts.sum() == 10
    assert counts.max() - counts.min() <= 1
    assert sorted(counts.tolist()) == [2, 2, 3, 3]
    check_partition(s, len(y))


def test_split_num_labels_extra_classes_vary_with_seed():
    y = labels([20, 20, 20, 20])
    winners = {tuple(np.bincount(y[split(y, num_labels=5, seed=s).labeled], minlength=4)) for s in range(20)}
    assert len(winners) > 1


def test_split_unlabeled_rows_stay_unlabeled():
    y = labels([5, 5, 5], unlabeled=8)
    minus = set(np.flatnonzero(y == -1).tolist())
    for kwargs in ({"labels_per_class": 2}, {"num_labels": 4}, {"labels_per_class": 1, "val_per_class": 2}, {}):
        s = split(y, seed=3, **kwargs)
        assert minus <= set(s.unlabeled.tolist())
        assert not minus & set(s.labeled.tolist()) and not minus & set(s.validation.tolist())
        check_partition(s, len(y))


def test_split_without_sizes_keeps_all_labels():
    y = labels([5, 6], unlabeled=3)
    s = split(y, seed=0)
    assert sorted(s.labeled.tolist()) == np.flatnonzero(y >= 0).tolist()
    assert s.unlabeled.tolist() == np.flatnonzero(y == -1).tolist()
    s = split(y, val_per_class=2, seed=0)
    assert np.bincount(y[s.validation]).tolist() == [2, 2]
    assert len(s.labeled) == 7


def test_split_accepts_torch_and_returns_sorted_indices():
    y = labels([10, 10], unlabeled=4)
    a = split(torch.from_numpy(y), labels_per_class=3, val_per_class=1, seed=2)
    b = split(y, labels_per_class=3, val_per_class=1, seed=2)
    assert np.array_equal(a.labeled, b.labeled) and np.array_equal(a.validation, b.validation)
    for arr in (a.labeled, a.unlabeled, a.validation):
        assert np.array_equal(arr, np.sort(arr))


def test_split_pinned_output():
    """Fixed input and seed: catches any change in the RNG or in how it is consumed."""
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, -1, -1, 0, 1])
    s = split(y, labels_per_class=2, val_per_class=1, seed=7)
    assert s.labeled.tolist() == [0, 1, 2, 4, 6, 8]
    assert s.validation.tolist() == [11, 14, 15]
    assert s.unlabeled.tolist() == [3, 5, 7, 9, 10, 12, 13]
    s = split(y, num_labels=4, seed=3)
    assert s.labeled.tolist() == [1, 2, 5, 9]
    assert s.validation.tolist() == []
    assert s.unlabeled.tolist() == [0, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14, 15]


def test_split_too_many_labels_names_the_class():
    y = labels([10, 3, 10])
    with pytest.raises(FewLabelsError) as exc:
        split(y, labels_per_class=4, seed=0, class_names=["cat", "bird", "dog"])
    assert "'bird'" in str(exc.value) and "3 labeled samples" in str(exc.value)
    with pytest.raises(FewLabelsError, match="Class '1'"):
        split(y, labels_per_class=4, seed=0)
    with pytest.raises(FewLabelsError, match="validation"):
        split(y, labels_per_class=2, val_per_class=2, seed=0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"labels_per_class": 2, "num_labels": 6}, "not both"),
        ({"num_labels": 2}, "fewer than the 3 classes"),
        ({"labels_per_class": 0}, "at least 1"),
        ({"num_labels": 0}, "at least 1"),
        ({"val_per_class": -1}, "val_per_class"),
    ],
)
def test_split_bad_arguments(kwargs, fragment):
    with pytest.raises(FewLabelsError, match=fragment):
        split(labels([10, 10, 10]), seed=0, **kwargs)


def test_split_no_labeled_rows():
    with pytest.raises(FewLabelsError, match="no labeled"):
        split(np.full(5, -1), labels_per_class=1)


# ---------------------------------------------------------------- name registry


def test_load_typo_suggests_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder called 'fashoin-mnist' here
    with pytest.raises(FewLabelsError) as exc:
        fldata.load("fashoin-mnist")
    assert "did you mean 'fashion-mnist'" in str(exc.value)
    assert "fashoin-mnist" in str(exc.value)


def test_load_unknown_name_lists_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FewLabelsError) as exc:
        fldata.load("zzzzzz")
    assert "did you mean" not in str(exc.value)
    assert "fashion-mnist" in str(exc.value) and "digits" in str(exc.value)


def test_where():
    assert fldata.where("digits") == "bundled with scikit-learn"
    with pytest.raises(KeyError):
        fldata.where("nope")
