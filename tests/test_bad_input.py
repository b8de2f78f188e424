"""Bad input, case by case: every refusal is exit code 2 and one sentence, and leaves nothing behind.

Each case builds its input in ``tmp_path``, runs ``fewlabels.cli.main`` in-process and checks:
exit code 2; stderr is exactly one line, starting with ``fewlabels: error:`` and naming the
problem (and the offending path where there is one); no traceback; and no partial output
(the ``--out`` folder is never created, or, for failures while writing, no ``*.tmp`` and no
half-written file is left). A case that shows a bug is kept, marked ``xfail(strict=True)``, until the bug is fixed.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import struct
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import fewlabels.utils.io
from fewlabels.cli import main

# ---------------------------------------------------------------- running and checking


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr); an escaped exception becomes a traceback on stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception:  # what a user would see as a traceback
        captured = capsys.readouterr()
        return -1, captured.out, captured.err + traceback.format_exc()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, out: str, err: str, fragments=(), forbid=()) -> str:
    assert "Traceback" not in err and "Traceback" not in out, f"traceback:\n{err}"
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr must be one line, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("fewlabels: error: ") and len(line) > len("fewlabels: error: ") + 10, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    for fragment in forbid:
        assert fragment not in line, f"{fragment!r} should not be in {line!r}"
    return line


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under ``folder`` (hidden ones included)."""
    return sorted(str(p) for p in folder.rglob("*") if p.name.endswith(".tmp"))


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- input builders

FM_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def fake_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10, size: int = 28) -> dict[str, Path]:
    """Four small but well-formed IDX files; the caller then breaks one."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {}
    for stem, n in ((FM_FILES[0], n_train), (FM_FILES[2], n_test)):
        files[stem] = folder / stem
        files[stem].write_bytes(idx_bytes(IMAGE_MAGIC, (n, size, size), rng.integers(0, 256, n * size * size, dtype=np.uint8).tobytes()))
    for stem, n in ((FM_FILES[1], n_train), (FM_FILES[3], n_test)):
        files[stem] = folder / stem
        files[stem].write_bytes(idx_bytes(LABEL_MAGIC, (n,), (np.arange(n) % 10).astype(np.uint8).tobytes()))
    return files


def save_image(path: Path, size: tuple[int, int] = (10, 10), mode: str = "L", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def image_folder(root: Path, classes=("a", "b"), per_class: int = 3, unlabeled: int = 2) -> Path:
    for c in classes:
        for i in range(per_class):
            save_image(root / c / f"{i}.png", seed=i)
    for i in range(unlabeled):
        save_image(root / "unlabeled" / f"u{i}.png", seed=100 + i)
    return root


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def small_arrays(n: int = 20, shape=(8, 8)):
    rng = np.random.default_rng(0)
    X = rng.random((n, *shape)).astype(np.float32)
    y = np.array([0, 1] * (n // 4) + [-1] * (n - 2 * (n // 4)))
    return X, y


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ---------------------------------------------------------------- the table of cases


@dataclass
class Expect:
    argv: list
    fragments: list = field(default_factory=list)
    forbid: list = field(default_factory=list)
    after: Callable[[], None] | None = None  # extra "nothing was left behind" checks
    out_may_exist: bool = False  # only for cases whose --out folder existed before the call


class Ctx:
    def __init__(self, tmp: Path, request) -> None:
        self.tmp = tmp
        self.out = tmp / "out"
        self._request = request

    def train(self, *args) -> list:
        """A tiny digits run; later flags override earlier ones (argparse keeps the last)."""
        return ["train", "--dataset", "digits", "--iterations", "2", "--batch-size", "8", "--uratio", "1",
                "--eval-every", "2", "--checkpoint-every", "2", "--out", self.out, "--quiet", *args]

    def base_run(self) -> Path:
        """A copy of a finished 2-step digits run (trained once per module)."""
        src = self._request.getfixturevalue("base_run")
        dst = self.tmp / "run"
        shutil.copytree(src, dst)
        return dst


class CaseTable(list):
    """A table of bad-input cases (this file's and the other bad-input files'): ``@table.case(id)`` registers a
    builder ``ctx -> Expect``; ``bug=`` keeps a case that shows a known bug as a strict xfail until it is fixed."""

    def case(self, case_id: str, bug: str | None = None) -> Callable:
        def register(fn):
            marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {bug}"), pytest.mark.filterwarnings("ignore")] if bug else []
            self.append(pytest.param(fn, id=case_id, marks=marks))
            return fn

        return register


def assert_refused(ctx, expect: Expect, tmp_path: Path, capsys) -> None:
    """Run ``expect``'s command: one sentence, exit 2, no --out folder (unless it existed), no temp file left."""
    code, out, err = run_main(expect.argv, capsys)
    assert_one_line_error(code, out, err, expect.fragments, expect.forbid)
    if not expect.out_may_exist:
        assert not ctx.out.exists(), f"{ctx.out} was created: {sorted(os.listdir(ctx.out))}"
    assert leftovers(tmp_path) == []
    if expect.after is not None:
        expect.after()


CASES = CaseTable()
case = CASES.case


# ---- 1-3: Fashion-MNIST IDX files


@case("fmnist-truncated-images")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[0]]
    p.write_bytes(p.read_bytes()[:-100])
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "truncated"])


@case("fmnist-truncated-header")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[0]]
    p.write_bytes(p.read_bytes()[:10])
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "truncated"])


@case("fmnist-wrong-magic")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[1]]
    p.write_bytes(struct.pack(">I", IMAGE_MAGIC) + p.read_bytes()[4:])  # an images magic on the labels file
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "magic number 0x00000803", "0x00000801"])


@case("fmnist-corrupt-gz")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    files[FM_FILES[0]].unlink()
    p = c.tmp / "fm" / (FM_FILES[0] + ".gz")
    p.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "corrupt"])


@case("fmnist-gz-cut-short")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    raw = gzip.compress(files[FM_FILES[2]].read_bytes())
    files[FM_FILES[2]].unlink()
    p = c.tmp / "fm" / (FM_FILES[2] + ".gz")
    p.write_bytes(raw[: len(raw) // 2])
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "corrupt"])


@case("fmnist-not-28x28")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[0]]
    p.write_bytes(idx_bytes(IMAGE_MAGIC, (20, 20, 20), bytes(20 * 20 * 20)))
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "expected 28x28"])


@case("fmnist-image-label-count-mismatch")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[1]]
    p.write_bytes(idx_bytes(LABEL_MAGIC, (19,), bytes(19)))
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "20 images", "19 labels"])


@case("fmnist-label-out-of-range")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    p = files[FM_FILES[3]]
    p.write_bytes(idx_bytes(LABEL_MAGIC, (10,), bytes([0] * 9 + [12])))
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), [str(p), "label 12", "0..9"])


@case("fmnist-file-missing")
def _(c: Ctx) -> Expect:
    files = fake_fashion_mnist(c.tmp / "fm")
    files[FM_FILES[3]].unlink()
    return Expect(c.train("--dataset", "fashion-mnist", "--data-dir", c.tmp / "fm"), ["Fashion-MNIST not found", str(c.tmp / "fm")])


# ---- 4-9: image folders


@case("folder-corrupt-image")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs")
    bad = root / "a" / "x.png"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(bad), "corrupt"])


@case("folder-truncated-png")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs")
    bad = root / "b" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(bad), "corrupt"])


@case("folder-empty-class-folder")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs")
    (root / "c").mkdir()
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(root / "c"), "holds no images"])


@case("folder-only-unlabeled")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs", classes=(), unlabeled=4)
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(root), "no class folders"])


@case("folder-single-class")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs", classes=("cat",))
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(root), "only one class folder (cat)"])


@case("folder-more-labels-than-images")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs", per_class=3)
    return Expect(c.train("--dataset", root, "--labels-per-class", "5"), ["Class 'a' has 3 labeled samples but 5 labels", "ask for fewer"])


@case("folder-non-image-file")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs")
    notes = root / "b" / "notes.txt"
    notes.write_text("taken on a Tuesday\n")
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(notes), "not an image file"])


@case("folder-test-has-unknown-class")
def _(c: Ctx) -> Expect:
    image_folder(c.tmp / "imgs" / "train")
    image_folder(c.tmp / "imgs" / "test", classes=("a", "zebra"), unlabeled=0)
    return Expect(c.train("--dataset", c.tmp / "imgs", "--labels-per-class", "1"), [str(c.tmp / "imgs" / "test"), "zebra"])


@case("folder-test-has-unlabeled")
def _(c: Ctx) -> Expect:
    image_folder(c.tmp / "imgs" / "train")
    image_folder(c.tmp / "imgs" / "test", unlabeled=1)
    return Expect(c.train("--dataset", c.tmp / "imgs", "--labels-per-class", "1"), [str(c.tmp / "imgs" / "test"), "unlabeled"])


@case("folder-decompression-bomb")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs")
    bomb = root / "a" / "huge.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0))
                     + png_chunk(b"IEND", b""))
    return Expect(c.train("--dataset", root, "--labels-per-class", "1"), [str(bomb)])


# ---- 10-14, 27: .npz arrays


@case("npz-nan-in-X")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    X[3, 2, 2] = np.nan
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y), "--labels-per-class", "1"), ["X contains NaN or Inf"])


@case("npz-inf-in-X-features")
def _(c: Ctx) -> Expect:
    X, y = small_arrays(shape=(5,))
    X[0, 0] = np.inf
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y), "--labels-per-class", "1", "--model", "mlp"),
                  ["X row 0 holds Inf in column 0"])


@case("npz-label-not-below-len-classes")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    y[0] = 2
    path = npz(c.tmp / "d.npz", X=X, y=y, classes=np.array(["cat", "dog"]))
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), ["y contains 2", "only 2 classes"])


@case("npz-label-below-minus-one")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    y[5] = -3
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y), "--labels-per-class", "1"), ["y contains -3", "-1 for unlabeled"])


@case("npz-float-labels")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y.astype(np.float32) + 0.25), "--labels-per-class", "1"),
                  ["y row 0 is", "whole class indices"])  # whole-number floats are classes (tests/test_your_data.py)


@case("npz-X-y-length-mismatch")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y[:-1]), "--labels-per-class", "1"), ["X has 20 rows but y has 19"])


@case("npz-missing-y")
def _(c: Ctx) -> Expect:
    X, _ = small_arrays()
    path = npz(c.tmp / "d.npz", X=X, labels=np.zeros(len(X), dtype=int))
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), [str(path), "no array named 'y'"])


@case("npz-not-a-zip")
def _(c: Ctx) -> Expect:
    path = c.tmp / "d.npz"
    path.write_text("X,y\n1,0\n2,1\n")
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), [str(path), "Cannot read", ".npz archive"])


@case("npz-X_test-without-y_test")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    path = npz(c.tmp / "d.npz", X=X, y=y, X_test=X[:4])
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), [str(path), "only one of X_test and y_test"])


@case("npz-y_test-unlabeled")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    path = npz(c.tmp / "d.npz", X=X, y=y, X_test=X[:3], y_test=np.array([0, -1, 1]))
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), [str(path), "y_test contains -1"])


@case("npz-all-rows-unlabeled")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=np.full_like(y, -1)), "--labels-per-class", "1"),
                  ["no labeled rows"])


@case("npz-no-unlabeled-left-for-fixmatch")
def _(c: Ctx) -> Expect:
    X, _ = small_arrays()
    path = npz(c.tmp / "d.npz", X=X, y=np.arange(len(X)) % 2)
    return Expect(c.train("--dataset", path, "--labels-per-class", "10"), ["fixmatch needs unlabeled data", "--algorithm supervised"])


@case("npz-X_test-nan-named-as-X")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    X_test = X[:4].copy()
    X_test[0, 0, 0] = np.nan
    path = npz(c.tmp / "d.npz", X=X, y=y, X_test=X_test, y_test=np.array([0, 1, 1, 0]))
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), ["X_test", "NaN"])


@case("npz-zero-features")
def _(c: Ctx) -> Expect:
    _, y = small_arrays()
    path = npz(c.tmp / "d.npz", X=np.zeros((len(y), 0), dtype=np.float32), y=y)
    return Expect(c.train("--dataset", path, "--labels-per-class", "1", "--model", "mlp"), ["X", "feature"])


@case("npz-complex-X")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    path = npz(c.tmp / "d.npz", X=X.astype(np.complex64), y=y)
    return Expect(c.train("--dataset", path, "--labels-per-class", "1"), ["X", "complex"])


@case("npz-path-does-not-exist")
def _(c: Ctx) -> Expect:
    path = c.tmp / "nothere.npz"
    return Expect(c.train("--dataset", path), [str(path)], forbid=["Unknown dataset"])


@case("npz-images-too-small-for-cnn")
def _(c: Ctx) -> Expect:
    X, y = small_arrays(shape=(2, 2))
    return Expect(c.train("--dataset", npz(c.tmp / "d.npz", X=X, y=y), "--labels-per-class", "1"), ["too small"])


# ---- 15-19, 25, 26, 28: settings


@case("config-unknown-key-suggests")
def _(c: Ctx) -> Expect:
    cfg = c.tmp / "cfg.yaml"
    cfg.write_text("iteratons: 5\nlr: 0.01\n")
    return Expect(c.train("--config", cfg), ["Unknown config key 'iteratons'", "did you mean 'iterations'?"])


@case("set-unknown-key-suggests")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "batchsize=4"), ["Unknown config key 'batchsize'", "did you mean 'batch_size'?"])


@case("iterations-negative")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--iterations", "-5"), ["iterations must be a whole number of at least 1", "-5"])


@case("iterations-zero")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--iterations", "0"), ["iterations must be a whole number of at least 1", "got 0"])


@case("iterations-not-a-number-via-set")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "iterations=lots"), ["iterations must be a whole number", "'lots'"])


@case("threshold-above-one")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--option", "threshold=1.5"), ["threshold must be in (0, 1]", "1.5"])


@case("threshold-zero")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--option", "threshold=0"), ["threshold must be in (0, 1]", "got 0"])


@case("option-unknown-suggests")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--option", "lamda_u=2"), ["fixmatch has no option 'lamda_u'", "did you mean 'lambda_u'?"])


@case("option-for-algorithm-without-options")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--algorithm", "supervised", "--option", "threshold=0.9"), ["supervised has no option 'threshold'"])


@case("config-not-a-mapping")
def _(c: Ctx) -> Expect:
    cfg = c.tmp / "cfg.yaml"
    cfg.write_text("- iterations\n- 5\n")
    return Expect(c.train("--config", cfg), [str(cfg), "must be a mapping", "list"])


@case("config-invalid-yaml")
def _(c: Ctx) -> Expect:
    cfg = c.tmp / "cfg.yaml"
    cfg.write_text("iterations: [5\nlr: 0.1\n")
    return Expect(c.train("--config", cfg), [str(cfg), "not valid YAML"])


@case("config-missing-file")
def _(c: Ctx) -> Expect:
    cfg = c.tmp / "nope.yaml"
    return Expect(c.train("--config", cfg), [str(cfg), "Cannot read config file", "No such file"])


@case("config-is-a-folder")
def _(c: Ctx) -> Expect:
    (c.tmp / "cfgdir").mkdir()
    return Expect(c.train("--config", c.tmp / "cfgdir"), [str(c.tmp / "cfgdir"), "Cannot read config file"])


@case("config-options-not-a-mapping")
def _(c: Ctx) -> Expect:
    cfg = c.tmp / "cfg.yaml"
    cfg.write_text("options: 0.95\n")
    return Expect(c.train("--config", cfg), ["options must be a mapping"])


@case("set-without-equals")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "lr"), ["--set 'lr' must look like name=value"])


@case("option-without-equals")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--option", "threshold"), ["--option 'threshold' must look like name=value"])


@case("labels-per-class-zero")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--labels-per-class", "0"), ["labels_per_class must be empty or a whole number of at least 1", "got 0"])


@case("num-labels-fewer-than-classes")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--num-labels", "5"), ["num_labels=5 is fewer than the 10 classes"])


@case("val-per-class-too-many")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "imgs", per_class=3)
    return Expect(c.train("--dataset", root, "--labels-per-class", "2", "--val-per-class", "2"),
                  ["Class 'a' has 3 labeled samples", "+ 2 validation"])


@case("batch-size-zero")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--batch-size", "0"), ["batch_size must be a whole number of at least 1", "got 0"])


@case("keep-checkpoints-zero")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--keep-checkpoints", "0"), ["keep_checkpoints must be a whole number of at least 1"])


@case("lr-negative")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--lr", "-0.1"), ["lr must be greater than 0", "-0.1"])


@case("ema-decay-one")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--ema-decay", "1"), ["ema_decay must be in [0, 1)"])


@case("device-cuda-without-gpu")
def _(c: Ctx) -> Expect:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    return Expect(c.train("--device", "cuda"), ["no CUDA GPU is available", "--device cpu"])


@case("device-unknown")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--device", "tpu"), ["device must be 'auto', 'cpu' or 'cuda[:N]'", "'tpu'"])


@case("lr-nan")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--lr", "nan"), ["lr"])


@case("set-model-not-a-string")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "model=5"), ["model"])


@case("set-dataset-not-a-string")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "dataset=123"), ["dataset"])


@case("set-device-not-a-string")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "device=0"), ["device"])


@case("set-seed-not-an-int")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "seed=abc"), ["seed"])


@case("set-labels-per-class-not-an-int")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "labels_per_class=abc"), ["labels_per_class"])


@case("set-ema-decay-not-a-number")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "ema_decay=abc"), ["ema_decay"])


# ---- label noise and class imbalance settings


@case("set-label-noise-one")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "label_noise=1.0"), ["label_noise must be a fraction of the labels in [0, 1)", "got 1.0"])


@case("set-label-noise-negative")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "label_noise=-0.1"), ["label_noise must be a fraction of the labels in [0, 1)", "got -0.1"])


@case("set-noise-type-unknown")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "noise_type=uniform"), ["noise_type must be 'symmetric' or 'asymmetric'", "'uniform'"])


@case("set-imbalance-ratio-below-one")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", "imbalance_ratio=0.5"), ["imbalance_ratio must be at least 1", "got 0.5"])


@case("imbalance-leaves-a-class-without-labels")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--labels-per-class", "4", "--set", "imbalance_ratio=10"),
                  ["imbalance_ratio=10 leaves class '9' without labels", "smaller imbalance_ratio"])


# ---- 24, 29: names and model/data fit


@case("unknown-algorithm-suggests")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--algorithm", "fixmach"), ["Unknown algorithm 'fixmach'", "did you mean 'fixmatch'?"])


@case("unknown-model-suggests")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--model", "cnn-wid"), ["Unknown model 'cnn-wid'", "did you mean 'cnn-wide'?"])


@case("unknown-dataset-suggests")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--dataset", "digitz"), ["Unknown dataset 'digitz'", "did you mean 'digits'?"])


@case("mlp-on-images")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--model", "mlp"), ["Model 'mlp' does not take images", "cnn"])


@case("cnn-on-features")
def _(c: Ctx) -> Expect:
    X, y = small_arrays(shape=(6,))
    return Expect(c.train("--dataset", npz(c.tmp / "f.npz", X=X, y=y), "--labels-per-class", "1", "--model", "cnn"),
                  ["Model 'cnn' does not take feature vectors", "mlp"])


# ---- 20: output folder


@case("out-under-a-regular-file")
def _(c: Ctx) -> Expect:
    blocker = c.tmp / "file.txt"
    blocker.write_text("not a folder\n")
    argv = c.train("--out", blocker / "run")

    def after() -> None:
        assert blocker.read_text() == "not a folder\n"

    return Expect(argv, [str(blocker), "blocked by the file"], after=after)


@case("out-under-proc")
def _(c: Ctx) -> Expect:
    target = Path("/proc/fewlabels-bad-input-test")

    def after() -> None:
        assert not target.exists()

    return Expect(c.train("--out", target), [str(target), "not writable"], after=after)


@case("out-already-holds-a-run")
def _(c: Ctx) -> Expect:
    c.out.mkdir()
    (c.out / "config.yaml").write_text("dataset: digits\n")
    (c.out / "results.json").write_text("{}\n")
    before = snapshot(c.out)

    def after() -> None:
        assert snapshot(c.out) == before

    return Expect(c.train(), [str(c.out), "already holds a run", "--overwrite"], after=after, out_may_exist=True)


# ---- 22, 23: --resume


def _resume_expect(run: Path, fragments, forbid=()) -> Expect:
    before = snapshot(run) if run.is_dir() else {}

    def after() -> None:
        if run.is_dir():
            assert snapshot(run) == before, "a refused --resume changed the run folder"
            assert leftovers(run) == []

    return Expect(["train", "--resume", run, "--quiet"], fragments, forbid, after=after)


@case("resume-config-says-other-model")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"] = "cnn-wide"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return _resume_expect(run, [str(run), "mixes two runs", "model='cnn-wide'", "model='cnn'"])


@case("resume-checkpoint-copied-into-other-dataset-run")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    other = c.tmp / "other"
    other.mkdir()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["dataset"] = "fashion-mnist"
    (other / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copy(run / "last.pt", other / "last.pt")
    return _resume_expect(other, [str(other), "mixes two runs", "dataset='fashion-mnist'", "dataset='digits'"])


@case("resume-data-changed-since")
def _(c: Ctx) -> Expect:
    X, y = small_arrays()
    path = npz(c.tmp / "d.npz", X=X, y=y)
    run = c.base_run()
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    ckpt["config"]["dataset"] = str(path)  # the run now says it was trained on d.npz, whose shape differs
    (run / "results.json").unlink()  # not finished (a finished run is left alone before the data is looked at)
    torch.save(ckpt, run / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(ckpt["config"], sort_keys=False))
    return _resume_expect(run, [str(run), "resume with the same data"])


@case("resume-folder-without-checkpoint")
def _(c: Ctx) -> Expect:
    run = c.tmp / "empty-run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset: digits\n")
    return _resume_expect(run, [str(run), "holds no checkpoint (last.pt)"])


@case("resume-folder-does-not-exist")
def _(c: Ctx) -> Expect:
    return _resume_expect(c.tmp / "no-such-run", [str(c.tmp / "no-such-run"), "holds no checkpoint"])


def _without_intact_checkpoint(run: Path) -> Path:
    """Only last.pt left: with an intact checkpoint-<step>.pt beside a damaged last.pt, that one is used (see below)."""
    for file in run.glob("checkpoint-*.pt"):
        file.unlink()
    return run


@case("resume-corrupt-last-pt")
def _(c: Ctx) -> Expect:
    run = _without_intact_checkpoint(c.base_run())
    (run / "last.pt").unlink()  # it is a hard link to checkpoint-*.pt: replace it, do not write through it
    (run / "last.pt").write_bytes(os.urandom(500))
    return _resume_expect(run, [str(run / "last.pt"), "corrupt"])


@case("resume-truncated-last-pt")
def _(c: Ctx) -> Expect:
    run = _without_intact_checkpoint(c.base_run())
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").unlink()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    return _resume_expect(run, [str(run / "last.pt"), "corrupt"])


@case("resume-a-file-not-a-folder")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    return _resume_expect(run / "last.pt", [str(run / "last.pt"), "needs a run folder"])


@case("resume-with-other-flags")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    expect = _resume_expect(run, ["--resume continues a run with its saved settings", "drop --iterations"])
    expect.argv += ["--iterations", "10"]
    return expect


@case("resume-config-yaml-invalid")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    (run / "config.yaml").write_text("model: [cnn\n")
    return _resume_expect(run, [str(run / "config.yaml")])


@case("resume-config-yaml-not-a-mapping")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    (run / "config.yaml").write_text("- dataset\n- digits\n")
    return _resume_expect(run, [str(run / "config.yaml")])


@case("resume-checkpoint-missing-keys")
def _(c: Ctx) -> Expect:
    run = _without_intact_checkpoint(c.base_run())
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    (run / "last.pt").unlink()
    torch.save({"format": ckpt["format"], "config": ckpt["config"]}, run / "last.pt")
    return _resume_expect(run, [str(run / "last.pt")])


@case("resume-checkpoint-config-not-a-mapping")
def _(c: Ctx) -> Expect:
    run = _without_intact_checkpoint(c.base_run())
    (run / "last.pt").unlink()
    torch.save({"format": 1, "config": "hello"}, run / "last.pt")
    return _resume_expect(run, [str(run / "last.pt")], forbid=["Unknown config key 'h'"])


# ---- 30: augment-preview


@case("preview-out-not-png")
def _(c: Ctx) -> Expect:
    return Expect(["augment-preview", "--dataset", "digits", "--n", "2", "--out", c.out / "grid.jpg"],
                  ["--out must name a .png file", "grid.jpg"])


@case("preview-n-zero")
def _(c: Ctx) -> Expect:
    return Expect(["augment-preview", "--dataset", "digits", "--n", "0", "--out", c.out / "grid.png"], ["--n must be at least 1"])


@case("preview-feature-vectors")
def _(c: Ctx) -> Expect:
    X, y = small_arrays(shape=(6,))
    path = npz(c.tmp / "f.npz", X=X, y=y)
    return Expect(["augment-preview", "--dataset", path, "--n", "2", "--out", c.out / "grid.png"], [str(path), "nothing to preview"])


@case("preview-out-unwritable")
def _(c: Ctx) -> Expect:
    target = Path("/proc/fewlabels-bad-input-test/grid.png")
    return Expect(["augment-preview", "--dataset", "digits", "--n", "2", "--out", target], ["not writable"])


@case("preview-out-is-a-folder")
def _(c: Ctx) -> Expect:
    target = c.tmp / "pics" / "grid.png"
    target.mkdir(parents=True)

    def after() -> None:
        assert target.is_dir() and list(target.iterdir()) == []
        assert leftovers(target.parent) == []

    return Expect(["augment-preview", "--dataset", "digits", "--n", "2", "--out", target], [str(target)], after=after)


# ---- issue 18: bad input, round two (the ten, and their siblings in other commands)


def _cnn_wide_config(run: Path) -> None:
    """config.yaml edited to another model: the folder no longer describes its checkpoint."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"] = "cnn-wide"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@case("iterations-beyond-64-bits")  # 2: accepted, and trained for ever
def _(c: Ctx) -> Expect:
    return Expect(c.train("--iterations", "99999999999999999999999"), ["iterations must be", "at most 100000000", "got 9999"])


@case("uratio-beyond-bound")  # 4, as filed: past the bound, so the bound is named (the memory check is below)
def _(c: Ctx) -> Expect:
    return Expect(c.train("--uratio", "100000000"), ["uratio must be", "at most 1000000"])


@case("set-checkpoint-every-beyond-bound")
def _(c: Ctx) -> Expect:
    return Expect(c.train("--set", f"checkpoint_every={10**30}"), ["checkpoint_every must be", "at most 100000000"])


@case("batch-size-beyond-memory")  # 3: an allocator traceback after a minute, config.yaml left behind
def _(c: Ctx) -> Expect:
    return Expect(c.train("--batch-size", "10000000", "--uratio", "7"),
                  ["One training step needs at least", "TiB", "of memory available", "lower --batch-size or --uratio"])


@case("seed-beyond-64-bits")  # 6: ValueError: Overflow when unpacking long long
def _(c: Ctx) -> Expect:
    return Expect(c.train("--seed", "1180591620717411303424"), ["seed must be", "0 or more and at most 4294967295"])


@case("preview-strong-views-negative")  # 7: exit 0, and the PNG written
def _(c: Ctx) -> Expect:
    return Expect(["augment-preview", "--dataset", "digits", "--strong-views", "-2", "--out", c.out / "g.png"],
                  ["--strong-views must be 0 or more", "got -2"])


@case("preview-seed-beyond-64-bits")
def _(c: Ctx) -> Expect:
    return Expect(["augment-preview", "--dataset", "digits", "--seed", str(2**70), "--out", c.out / "g.png"],
                  ["--seed must be 0 or more and at most 4294967295"])


@case("probe-seeds-beyond-bound")
def _(c: Ctx) -> Expect:
    return Expect(["probe", c.tmp / "run", "--seeds", str(10**30)], ["--seeds must be at least 1 and at most 1000"])


@case("evaluate-batch-size-beyond-bound")
def _(c: Ctx) -> Expect:
    return Expect(["evaluate", c.tmp / "run", "--batch-size", str(10**30)], ["--batch-size must be at least 1 and at most"])


@case("out-empty")  # 8: exit 0, "run written to ", and no run anywhere
def _(c: Ctx) -> Expect:
    return Expect(c.train("--out", ""), ["out must be a path (a non-empty string)"])


@case("export-out-empty")  # 8's sibling: '' was taken as "not given" and the default written
def _(c: Ctx) -> Expect:
    run = c.base_run()
    before = snapshot(run)
    return Expect(["export", run, "--out", ""], ["--out is empty"], after=lambda: _unchanged(run, before))


@case("evaluate-json-empty")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    before = snapshot(run)
    return Expect(["evaluate", run, "--json", "", "--quiet"], ["--json is empty"], after=lambda: _unchanged(run, before))


@case("pipeline-out-empty")
def _(c: Ctx) -> Expect:
    return Expect(["pipeline", "--dataset", "digits", "--out", "", "--quiet"], ["--out is empty"])


@case("teacher-not-finished")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    (run / "results.json").unlink()  # killed before its end: resumable, not a teacher
    before = snapshot(run)
    return Expect(c.train("--algorithm", "distill", "--option", f"teacher={run}"),
                  [str(run), "not a finished run", "--resume"], after=lambda: _unchanged(run, before))


@case("pipeline-stage-sets-its-own-folder")
def _(c: Ctx) -> Expect:
    return Expect(["pipeline", "--dataset", "digits", "--out", c.out, "--stage", f"distill.options.teacher={c.tmp}",
                   "--quiet"], ["3-distill", "'options.teacher' is the pipeline's to set"])


@case("pipeline-stage-image-size-differs")  # found before stage 1 trains, not after stage 2
def _(c: Ctx) -> Expect:
    return Expect(["pipeline", "--dataset", "digits", "--out", c.out, "--stage", "distill.image_size=16", "--quiet"],
                  ["3-distill", "learns from stage 2-finetune", "the data's own", "16 px", "--image-size"])


def _unchanged(run: Path, before: dict) -> None:
    assert snapshot(run) == before, "a refused command changed the run folder"


def _run_folder_command(command: str) -> Callable[[Ctx], Expect]:
    """9: every command that reads a run folder refuses one whose config.yaml describes another run, as --resume does."""

    def build(c: Ctx) -> Expect:
        run = c.base_run()
        _cnn_wide_config(run)
        before = snapshot(run)
        argv = {"evaluate": ["evaluate", run, "--quiet"], "report": ["report", run, "--quiet"],
                "export": ["export", run, "--out", c.tmp / "m.ts"], "probe": ["probe", run],
                "embed": ["embed", run, "--out", c.tmp / "e.npz"],
                "predict": ["predict", run, save_image(c.tmp / "p" / "x.png", (8, 8)), "--out", c.tmp / "p.csv"],
                "evaluate-checkpoint-file": ["evaluate", run / "checkpoint-00000002.pt", "--json", c.tmp / "e.json"],
                "init": c.train("--init", run), "teacher": c.train("--algorithm", "distill", "--option", f"teacher={run}")}
        return Expect(argv[command], [str(run), "mixes two runs", "model='cnn-wide'", "model='cnn'"],
                      after=lambda: _unchanged(run, before))

    return build


for _command in ("evaluate", "report", "export", "probe", "embed", "predict", "evaluate-checkpoint-file", "init", "teacher"):
    case(f"{_command}-config-says-other-model")(_run_folder_command(_command))


@case("config-not-utf8")  # 10: UnicodeDecodeError
def _(c: Ctx) -> Expect:
    path = c.tmp / "binary.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    return Expect(c.train("--config", path), [str(path), "not text (not UTF-8)"])


@case("report-metrics-csv-not-text")  # 10's sibling in the run-folder reader
def _(c: Ctx) -> Expect:
    run = c.base_run()
    (run / "metrics.csv").write_bytes(bytes(range(128, 256)) * 4)
    return Expect(["report", run, "--quiet"], [str(run / "metrics.csv"), "damaged"])


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(build, tmp_path, request, capsys):
    ctx = Ctx(tmp_path, request)
    assert_refused(ctx, build(ctx), tmp_path, capsys)


def test_case_table_is_large_and_ids_are_unique():
    ids = [p.id for p in CASES]
    assert len(ids) >= 25 and len(ids) == len(set(ids))


# ---------------------------------------------------------------- a finished run to resume from


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "base-run"
    code = main(["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2", "--batch-size", "8",
                 "--uratio", "1", "--eval-every", "2", "--checkpoint-every", "2", "--out", str(out), "--quiet"])
    assert code == 0 and (out / "last.pt").is_file()
    return out


# ---------------------------------------------------------------- 21: out of space while writing

# in the order a 2-step run writes them: nothing before the first checkpoint, then config.yaml and the metrics held till then
WRITES = ["checkpoint-00000002.pt", "config.yaml", "metrics.csv", "results.json"]


@pytest.mark.parametrize("failing", range(len(WRITES)), ids=[f"while-writing-{w}" for w in WRITES])
def test_disk_full_while_writing_is_one_sentence_and_no_half_files(failing, tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        if len(calls) == failing + 1:
            raise OSError(errno.ENOSPC, "No space left on device", calls[-1])
        return real_fsync(fd)

    monkeypatch.setattr(fewlabels.utils.io.os, "fsync", fsync)
    out = tmp_path / "out"
    code, stdout, err = run_main(["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2", "--batch-size", "8",
                                  "--uratio", "1", "--eval-every", "2", "--checkpoint-every", "2", "--out", out, "--quiet"], capsys)
    monkeypatch.undo()
    assert len(calls) == failing + 1 and WRITES[failing] in Path(calls[-1]).name
    assert_one_line_error(code, stdout, err, ["No space left on device", WRITES[failing], "choose another --out folder"])
    assert leftovers(tmp_path) == []
    # what is there is whole: each earlier write is complete, the failed one and later ones are absent; a failed first
    # checkpoint leaves no folder, and after it the folder is resumable (--resume writes a missing config.yaml)
    if failing == 0:
        assert not out.exists()
        return
    present = sorted(p.name for p in out.iterdir())
    expected = sorted(WRITES[:failing] + ["last.pt"])
    assert present == expected
    if "config.yaml" in present:
        assert yaml.safe_load((out / "config.yaml").read_text())["dataset"] == "digits"
    if "metrics.csv" in present:
        assert (out / "metrics.csv").read_text().splitlines()[0].startswith("step,")
    if "last.pt" in present:
        assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 2
    if failing == 1:  # a checkpoint without config.yaml: --resume finishes the run and writes it
        code, stdout, err = run_main(["train", "--resume", out, "--quiet"], capsys)
        assert code == 0, err
        assert yaml.safe_load((out / "config.yaml").read_text())["dataset"] == "digits" and (out / "results.json").is_file()


# ---------------------------------------------------------------- outside the table


def test_malformed_flag_value_is_one_sentence(tmp_path, capsys):
    code, out, err = run_main(["train", "--dataset", "digits", "--iterations", "abc", "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, out, err, ["--iterations", "abc"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["config", "set"])
def test_num_labels_alone_from_config_or_set_trains(how, tmp_path, capsys):
    out = tmp_path / "out"
    if how == "config":
        (tmp_path / "cfg.yaml").write_text("num_labels: 20\n")
        extra = ["--config", tmp_path / "cfg.yaml"]
    else:
        extra = ["--set", "num_labels=20"]
    code, stdout, err = run_main(["train", "--dataset", "digits", "--iterations", "2", "--batch-size", "8", "--uratio", "1",
                                  "--out", out, "--quiet", *extra], capsys)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["num_labeled"] == 20


def test_demo_with_bad_iterations_ends_in_one_error_line(tmp_path, capsys):
    """demo echoes the command it runs (and maybe a note) on stderr first; the error is one line, last."""
    code, out, err = run_main(["demo", "--fixmatch", "--iterations", "0", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1].startswith("fewlabels: error: iterations must be a whole number of at least 1")
    assert [line for line in lines if line.startswith("fewlabels: error:")] == [lines[-1]]
    assert all(line.startswith(("fewlabels train ", "Fashion-MNIST is not on this machine")) for line in lines[:-1])
    code, out, err = run_main(["demo", "--iterations", "0", "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.splitlines()[-1].startswith("fewlabels: error: iterations must be a whole number of at least 1")
    code, out, err = run_main(["demo", "--pipeline", "--iterations", "0", "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.splitlines()[-1].startswith(
        "fewlabels: error: pipeline stage 1-pretrain: iterations must be a whole number of at least 1")
    code, out, err = run_main(["demo", "--pipeline", "--fixmatch", "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.splitlines()[-1].startswith("fewlabels: error: argument --fixmatch: not allowed")
    assert not (tmp_path / "out").exists()


def test_mixed_sizes_and_colour_modes_train_fine(tmp_path, capsys):
    """The positive case: 10x10 gray and 12x12 RGB images side by side are brought to one size and mode."""
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        for i in range(3):
            save_image(root / c / f"g{i}.png", (10, 10), "L", seed=i)
        for i in range(2):
            save_image(root / c / f"c{i}.png", (12, 12), "RGB", seed=10 + i)
    save_image(root / "unlabeled" / "u0.png", (10, 10), "L", seed=20)
    save_image(root / "unlabeled" / "u1.jpg", (12, 12), "RGB", seed=21)
    out = tmp_path / "out"
    code, stdout, err = run_main(["train", "--dataset", root, "--labels-per-class", "2", "--iterations", "2", "--batch-size", "4",
                                  "--uratio", "1", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and f"run written to {out}" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["num_labeled"] == 4 and results["num_unlabeled"] == 6 + 2
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["sample_shape"] == [3, 10, 10]
    assert leftovers(out) == []


# ---------------------------------------------------------------- issue 18, outside the table


def test_json_output_into_a_missing_folder_is_written_there(base_run, tmp_path, capsys):
    """1: evaluate --json nodir/sub/e.json was a FileNotFoundError on the temp file; missing parents are made, as --out does."""
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    out = tmp_path / "nodir" / "sub" / "e.json"
    code, stdout, err = run_main(["evaluate", run, "--json", out, "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert json.loads(out.read_text())["accuracy"] >= 0 and leftovers(tmp_path) == []


P = ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "3", "--eval-every", "3",
     "--checkpoint-every", "3", "--quiet"]


@pytest.mark.parametrize("flags", [["--batch-size", "1000000"], ["--uratio", "100000"]], ids=["batch-size", "uratio"])
def test_a_step_beyond_memory_is_refused_before_anything_is_written(flags, tmp_path, capsys, monkeypatch):
    """3, 4: the allocator's traceback after a minute, config.yaml left; now the estimate and the machine's memory, up front."""
    import fewlabels.train.footprint

    monkeypatch.setattr(fewlabels.train.footprint, "available_bytes", lambda device: 8 * 2**30)
    out = tmp_path / "out"
    code, stdout, err = run_main([*P, *flags, "--out", out], capsys)
    assert_one_line_error(code, stdout, err, ["One training step needs at least", "GiB", "this machine has 8.0 GiB",
                                              "lower --batch-size or --uratio"])
    assert not out.exists()


def test_a_run_that_dies_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys, monkeypatch):
    """5: a loss that is NaN at step 1 stops the run (exit 1, as the README says for NaN) and leaves no config.yaml
    without a checkpoint. (--lr 1e30 used to cause it; --lr is now bounded, so the loss is made NaN directly.)"""
    from fewlabels.algorithms.fixmatch import FixMatch

    real = FixMatch.losses

    def nan_losses(self, model, batch, step):
        out = real(self, model, batch, step)
        return {**out, "total": out["total"] * float("nan")} if step >= 1 else out  # one good step, then NaN

    monkeypatch.setattr(FixMatch, "losses", nan_losses)
    out = tmp_path / "out"
    code, stdout, err = run_main([*P, "--algorithm", "fixmatch", "--out", out], capsys)
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1 and "at step 1" in err, err
    assert not out.exists() and leftovers(tmp_path) == []


def test_algorithm_model_and_dataset_names_are_case_insensitive(tmp_path, capsys):
    """--algorithm FixMatch was refused with "did you mean 'mixmatch'?"; names are matched in any case, kept lower case."""
    out = tmp_path / "out"
    code, stdout, err = run_main(["train", "--dataset", "Digits", "--algorithm", "FixMatch", "--model", "CNN", "--labels-per-class",
                                  "2", "--iterations", "1", "--batch-size", "8", "--uratio", "1", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["dataset"], cfg["algorithm"], cfg["model"]) == ("digits", "fixmatch", "cnn")


def test_images_in_subfolders_of_a_class_folder_count_for_train_evaluate_and_predict(tmp_path):
    """One rule: train ignored root/a/sub/*.png while predict found it; now every image under a class folder is that class."""
    from fewlabels import data
    from fewlabels.evaluate import inputs

    root = image_folder(tmp_path / "imgs")
    nested = save_image(root / "a" / "more" / "deeper" / "n.png", seed=7)
    save_image(root / "a" / ".hidden" / "h.png", seed=8)  # hidden folders stay out, as before
    train = data.load(str(root)).train
    assert len(train) == 2 * 3 + 1 + 2 and int((train.y == 0).sum()) == 4
    assert nested in inputs.image_paths([str(root)])
    assert int((inputs.labeled_set(str(root), None, ["a", "b"], (1, 10, 10), own=False).y == 0).sum()) == 4


def test_resume_of_a_finished_run_says_so_and_changes_nothing(base_run, tmp_path, capsys):
    """--resume on a finished run rewrote results.json; now it says the run is finished and exits 0 (the run is already
    where --resume would take it, so a retry loop around --resume ends), every file untouched."""
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    before = snapshot(run)
    code, stdout, err = run_main(["train", "--resume", run, "--quiet"], capsys)
    assert code == 0 and err == "", err
    assert f"{run} is a finished run (2 iterations); nothing to resume, nothing changed." in stdout
    assert snapshot(run) == before


def test_damaged_last_pt_resumes_from_the_intact_checkpoint_and_says_so(tmp_path, capsys):
    """last.pt damaged, checkpoint-<step>.pt intact: --resume refused; now it resumes from the intact one with one warning
    line, relinks last.pt, and ends where the run that was never damaged ended."""
    out = tmp_path / "out"
    args = ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "4", "--batch-size", "8", "--uratio", "1",
            "--eval-every", "2", "--checkpoint-every", "2", "--keep-checkpoints", "2", "--out", out, "--quiet"]
    assert run_main(args, capsys)[0] == 0
    whole = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    # as a kill at step 4 would leave it, then last.pt replaced by garbage
    (out / "checkpoint-00000004.pt").unlink()
    (out / "results.json").unlink()
    (out / "last.pt").unlink()
    (out / "last.pt").write_bytes(os.urandom(500))
    code, stdout, err = run_main(["evaluate", out, "--json", tmp_path / "e.json", "--quiet"], capsys)
    assert code == 0 and err.splitlines() == [
        f"fewlabels: warning: {out / 'last.pt'} is damaged; using the intact checkpoint-00000002.pt (step 2) instead."], err
    code, stdout, err = run_main(["train", "--resume", out, "--quiet"], capsys)
    assert code == 0 and len(err.splitlines()) == 1 and "checkpoint-00000002.pt (step 2)" in err, err
    resumed = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert resumed["step"] == 4 and all(torch.equal(whole["model"][k], resumed["model"][k]) for k in whole["model"])
    assert (out / "results.json").is_file() and leftovers(out) == []


def test_checkpoint_file_in_a_folder_of_another_run_is_refused_by_load(base_run, tmp_path):
    """9's sibling in the Python API: load(run/checkpoint-<step>.pt) skipped the folder's check."""
    import fewlabels

    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    _cnn_wide_config(run)
    with pytest.raises(ValueError, match="mixes two runs: config.yaml has model='cnn-wide' but checkpoint-00000002.pt"):
        fewlabels.load(run / "checkpoint-00000002.pt")
