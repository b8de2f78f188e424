"""Bad input to the labeling loop (``suggest``, ``merge-labels``, ``check-labels``, ``probe``), case by case.

The same promise as ``test_bad_input``: exit code 2, one sentence, no traceback, nothing written, and nothing of the
user's moved or overwritten. A multi-file operation (``merge-labels --sorted``, ``suggest --copy-to``) checks every
file before it moves or copies any, so each refusal here also checks that the dataset is exactly as it was.
"""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import (  # noqa: F401 (base_run is a fixture)
    CaseTable,
    Ctx,
    Expect,
    assert_one_line_error,
    assert_refused,
    base_run,
    image_folder,
    leftovers,
    npz,
    run_main,
    save_image,
    small_arrays,
    snapshot,
)

from fewlabels.cli import main
from fewlabels.errors import FewLabelsError

CASES = CaseTable()
case = CASES.case


def _unchanged(folder: Path, before: dict) -> None:
    assert snapshot(folder) == before, f"a refused command changed {folder}"


def _sorted_copies(c: Ctx, placement: dict[str, list[str]]) -> tuple[Path, Path]:
    """A folder dataset (classes cats, dogs; unlabeled u0.png, u1.png) and a --copy-to folder sorted as ``placement``."""
    root = image_folder(c.tmp / "data", classes=("cats", "dogs"))
    sort = c.tmp / "sort"
    for cls, names in placement.items():
        for name in names:
            (sort / cls).mkdir(parents=True, exist_ok=True)
            (sort / cls / name).write_bytes((root / "unlabeled" / name).read_bytes())
    return root, sort


def _picks_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "sample", "label"])
        for rank, (sample, label) in enumerate(rows, 1):
            w.writerow([rank, sample, label])
    return path


# ---- 1-2: merge-labels --sorted plans every move before it makes one


@case("merge-sorted-same-file-in-two-classes")  # moved into the first, then a FileNotFoundError traceback
def _(c: Ctx) -> Expect:
    root, sort = _sorted_copies(c, {"cats": ["u0.png", "u1.png"], "dogs": ["u0.png"]})
    before = snapshot(root)
    return Expect(["merge-labels", "--dataset", root, "--sorted", sort], ["u0.png", "cats", "dogs"],
                  after=lambda: _unchanged(root, before))


@case("merge-sorted-class-named-train-and-test")  # the dataset became a train/test pair that train refuses
def _(c: Ctx) -> Expect:
    root, sort = _sorted_copies(c, {"train": ["u0.png"], "test": ["u1.png"]})
    before = snapshot(root)
    return Expect(["merge-labels", "--dataset", root, "--sorted", sort], [str(sort / "test"), "'test'", "rename"],
                  after=lambda: (_unchanged(root, before), _no_new_folders(root, {"cats", "dogs", "unlabeled"})))


@case("merge-sorted-class-named-train")
def _(c: Ctx) -> Expect:
    root, sort = _sorted_copies(c, {"cats": ["u1.png"], "train": ["u0.png"]})
    before = snapshot(root)
    return Expect(["merge-labels", "--dataset", root, "--sorted", sort], ["'train'"],
                  after=lambda: _unchanged(root, before))


def _no_new_folders(root: Path, expected: set[str]) -> None:
    assert {p.name for p in root.iterdir()} == expected


# ---- 4, 7: suggest's places


@case("suggest-copy-to-symlink-loop")  # RuntimeError: Symlink loop
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "data")
    loop = c.tmp / "loop"
    loop.symlink_to(loop)
    return Expect(["suggest", "--dataset", root, "--budget", "1", "--out", c.tmp / "p.csv", "--copy-to", loop],
                  [str(loop), "--copy-to"], after=lambda: _absent(c.tmp / "p.csv"))


@case("suggest-out-inside-unlabeled")  # the next train refused the CSV as "not an image file"
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "data")
    before = snapshot(root)
    return Expect(["suggest", "--dataset", root, "--budget", "1", "--out", root / "unlabeled" / "picks.csv"],
                  ["--out", str(root / "unlabeled" / "picks.csv"), "inside"], after=lambda: _unchanged(root, before))


@case("suggest-out-inside-a-new-class-folder")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "data")
    return Expect(["suggest", "--dataset", root, "--budget", "1", "--out", root / "new" / "picks.csv"],
                  ["--out", "inside"], after=lambda: _no_new_folders(root, {"a", "b", "unlabeled"}))


def _absent(path: Path) -> None:
    assert not path.exists(), f"{path} was written"


# ---- 5: merge-labels --labels


def _npz_round(c: Ctx, rows: list[tuple[str, str]], **arrays) -> tuple[Path, Path]:
    X, y = small_arrays()
    data = npz(c.tmp / "d.npz", **{"X": X, "y": y, **arrays})
    return data, _picks_csv(c.tmp / "picks.csv", rows)


@case("merge-labels-csv-not-utf8")  # UnicodeDecodeError
def _(c: Ctx) -> Expect:
    data, picks = _npz_round(c, [("12", "0")])
    picks.write_bytes(b"rank,sample,label\n1,12,\xff\xfe\x80\n")
    before = snapshot(c.tmp)
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", c.tmp / "d2.npz"],
                  [str(picks), "UTF-8"], after=lambda: _unchanged(c.tmp, before))


@case("merge-labels-row-twice-two-classes")  # the last one silently won
def _(c: Ctx) -> Expect:
    data, picks = _npz_round(c, [("12", "0"), ("13", "1"), ("12", "1")])
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", c.tmp / "d2.npz"],
                  [str(picks), "row 12", "'0'", "'1'"], after=lambda: _absent(c.tmp / "d2.npz"))


@case("merge-labels-out-is-a-folder")  # IsADirectoryError
def _(c: Ctx) -> Expect:
    data, picks = _npz_round(c, [("12", "0")])
    (c.tmp / "folder.npz").mkdir()
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", c.tmp / "folder.npz"],
                  ["--out", str(c.tmp / "folder.npz"), "folder"], after=lambda: _no_tmp_in(c.tmp / "folder.npz"))


@case("merge-labels-y-fractions")  # silently truncated, though train refuses the same file
def _(c: Ctx) -> Expect:
    X, _ = small_arrays()
    data = npz(c.tmp / "d.npz", X=X, y=np.array([0.5, 1.0] + [-1.0] * 18))
    picks = _picks_csv(c.tmp / "picks.csv", [("12", "0")])
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", c.tmp / "d2.npz"],
                  [str(data), "row 0 is 0.5", "whole class indices"], after=lambda: _absent(c.tmp / "d2.npz"))


@case("merge-labels-y-strings")  # ValueError: invalid literal for int()
def _(c: Ctx) -> Expect:
    X, _ = small_arrays()
    data = npz(c.tmp / "d.npz", X=X, y=np.array(["cat", "dog"] + ["?"] * 18))
    picks = _picks_csv(c.tmp / "picks.csv", [("12", "0")])
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", c.tmp / "d2.npz"],
                  [str(data), "labels must be integers"], after=lambda: _absent(c.tmp / "d2.npz"))


def _no_tmp_in(folder: Path) -> None:
    assert list(folder.iterdir()) == []


# ---- 6, 8: check-labels and suggest flags


@case("check-labels-out-empty")  # written to RUN_DIR/check-labels.csv
def _(c: Ctx) -> Expect:
    run = c.base_run()
    before = snapshot(run)
    return Expect(["check-labels", run, "--out", ""], ["--out is empty"], after=lambda: _unchanged(run, before))


@case("check-labels-seed-negative")  # a traceback from scikit-learn
def _(c: Ctx) -> Expect:
    run = c.base_run()
    before = snapshot(run)
    return Expect(["check-labels", run, "--seed", "-1", "--out", c.tmp / "l.csv"],
                  ["--seed must be 0 or more and at most 4294967295, got -1"],
                  after=lambda: (_unchanged(run, before), _absent(c.tmp / "l.csv")))


@case("suggest-seed-negative")  # a traceback from scikit-learn
def _(c: Ctx) -> Expect:
    return Expect(["suggest", "--dataset", "digits", "--budget", "3", "--seed", "-1", "--out", c.tmp / "p.csv"],
                  ["--seed must be 0 or more and at most 4294967295, got -1"], after=lambda: _absent(c.tmp / "p.csv"))


@case("suggest-seed-beyond-64-bits")
def _(c: Ctx) -> Expect:
    return Expect(["suggest", "--dataset", "digits", "--budget", "3", "--seed", str(2**70), "--out", c.tmp / "p.csv"],
                  ["--seed must be 0 or more and at most 4294967295"], after=lambda: _absent(c.tmp / "p.csv"))


# ---- found beside them: loops of links as outputs, outputs inside an image folder, a damaged copy manifest


@case("suggest-out-symlink-loop")  # the link was replaced by the CSV
def _(c: Ctx) -> Expect:
    loop = c.tmp / "loop.csv"
    loop.symlink_to(loop)
    return Expect(["suggest", "--dataset", "digits", "--budget", "3", "--out", loop], [str(loop), "loop"],
                  after=lambda: _still_a_link(loop))


@case("merge-labels-out-symlink-loop")
def _(c: Ctx) -> Expect:
    data, picks = _npz_round(c, [("12", "0")])
    loop = c.tmp / "loop.npz"
    loop.symlink_to(loop)
    return Expect(["merge-labels", "--dataset", data, "--labels", picks, "--out", loop], [str(loop), "loop"],
                  after=lambda: _still_a_link(loop))


@case("check-labels-out-symlink-loop")
def _(c: Ctx) -> Expect:
    run = c.base_run()
    loop = c.tmp / "loop.csv"
    loop.symlink_to(loop)
    return Expect(["check-labels", run, "--out", loop], [str(loop), "loop"], after=lambda: _still_a_link(loop))


@case("check-labels-other-dataset-names-its-own-flags")  # "give --from a run ...": check-labels has no --from
def _(c: Ctx) -> Expect:
    run = c.base_run()
    X = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    data = npz(c.tmp / "other.npz", X=X, y=np.array([0, 1] * 10))
    return Expect(["check-labels", run, "--dataset", data, "--out", c.tmp / "l.csv"], ["trained on digits", "--dataset"],
                  forbid=["--from"], after=lambda: _absent(c.tmp / "l.csv"))


@case("check-labels-out-inside-image-folder")
def _(c: Ctx) -> Expect:
    root, run = _folder_run(c)
    before = snapshot(root)
    return Expect(["check-labels", run, "--out", root / "a" / "labels.csv"], [str(root / "a" / "labels.csv"), "inside"],
                  after=lambda: _unchanged(root, before))


@case("probe-json-inside-image-folder")
def _(c: Ctx) -> Expect:
    root, run = _folder_run(c)
    before = snapshot(root)
    return Expect(["probe", run, "--json", root / "unlabeled" / "probe.json"], ["--json", "inside"],
                  after=lambda: _unchanged(root, before))


@case("merge-sorted-manifest-points-outside-unlabeled")  # would move a labeled image of cats into dogs
def _(c: Ctx) -> Expect:
    from fewlabels.select.rounds import MANIFEST

    root, sort = _sorted_copies(c, {"dogs": ["u0.png"]})
    (sort / MANIFEST).write_text(json.dumps({"copies": {"u0.png": "../cats/0.png"}}))
    before = snapshot(root)
    return Expect(["merge-labels", "--dataset", root, "--sorted", sort], [str(sort / MANIFEST), "damaged"],
                  after=lambda: _unchanged(root, before))


def _folder_run(c: Ctx) -> tuple[Path, Path]:
    """An image folder and a 2-step run trained on it."""
    root = image_folder(c.tmp / "data")
    run = c.tmp / "folder-run"
    assert main(["train", "--dataset", str(root), "--iterations", "2", "--batch-size", "4", "--uratio", "1",
                 "--eval-every", "2", "--checkpoint-every", "2", "--out", str(run), "--quiet"]) == 0
    return root, run


def _still_a_link(path: Path) -> None:
    assert path.is_symlink(), f"{path} was replaced"


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(build, tmp_path, request, capsys):
    ctx = Ctx(tmp_path, request)
    assert_refused(ctx, build(ctx), tmp_path, capsys)


# ---- what must work: distinct copies, a row given twice alike


def test_copies_of_two_picks_with_one_name_are_distinct_and_merge_back(tmp_path, capsys):
    """3: unlabeled/x/p.png and unlabeled/y/p.png used to land on one copy, so one original could never be merged."""
    root = image_folder(tmp_path / "data", classes=("cats", "dogs"), unlabeled=0)
    first = save_image(root / "unlabeled" / "x" / "p.png", seed=101)
    second = save_image(root / "unlabeled" / "y" / "p.png", seed=102)
    originals = {first.read_bytes(), second.read_bytes()}
    sort, picks = tmp_path / "sort", tmp_path / "picks.csv"
    code, out, err = run_main(["suggest", "--dataset", root, "--budget", "2", "--out", picks, "--copy-to", sort], capsys)
    assert code == 0, err
    copies = sorted(p for p in sort.iterdir() if p.is_file() and not p.name.startswith("."))
    assert len(copies) == 2 and {p.read_bytes() for p in copies} == originals
    for copy, cls in zip(copies, ("cats", "dogs")):
        copy.rename(sort / cls / copy.name)
    code, out, err = run_main(["merge-labels", "--dataset", root, "--sorted", sort], capsys)
    assert code == 0, err
    assert not first.exists() and not second.exists()
    moved = [p for cls in ("cats", "dogs") for p in (root / cls).rglob("p.png")]
    assert len(moved) == 2 and {p.read_bytes() for p in moved} == originals


def test_copy_never_overwrites_a_file_in_the_copy_folder(tmp_path):
    """A copy is created, never written over a file that appeared in the folder after the check."""
    from fewlabels.select.rounds import copy_picks

    src = save_image(tmp_path / "data" / "unlabeled" / "p.png")
    target = tmp_path / "sort"
    target.mkdir()
    (target / "p.png").write_bytes(b"the user's")
    with pytest.raises(FewLabelsError, match="nothing was overwritten"):
        copy_picks([str(src)], target, ["cats"], root=tmp_path / "data")
    assert (target / "p.png").read_bytes() == b"the user's"
    assert sorted(p.name for p in target.iterdir()) == ["p.png"]  # the class folder it made is gone again


def test_the_same_row_twice_with_one_class_merges(tmp_path, capsys):
    X, y = small_arrays()
    data = npz(tmp_path / "d.npz", X=X, y=y)
    picks = _picks_csv(tmp_path / "picks.csv", [("12", "0"), ("13", "1"), ("12", "0")])
    code, out, err = run_main(["merge-labels", "--dataset", data, "--labels", picks, "--out", tmp_path / "d2.npz"],
                              capsys)
    assert code == 0, err
    with np.load(tmp_path / "d2.npz") as f:
        assert f["y"][12] == 0 and f["y"][13] == 1


def test_a_move_that_fails_midway_is_undone(tmp_path, capsys, monkeypatch):
    """A full disk on the second move: the first is moved back, the folder made for it removed, one sentence."""
    root = image_folder(tmp_path / "data", classes=("cats", "dogs"))
    sort = tmp_path / "sort"
    for cls, name in (("birds", "u0.png"), ("cats", "u1.png")):
        (sort / cls).mkdir(parents=True)
        (sort / cls / name).write_bytes((root / "unlabeled" / name).read_bytes())
    before = snapshot(root)
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code, out, err = run_main(["merge-labels", "--dataset", root, "--sorted", sort], capsys)
    assert_one_line_error(code, out, err, ["No space left"])
    assert snapshot(root) == before and not (root / "birds").exists()


def test_a_copy_that_fails_midway_leaves_no_copy_folder_and_no_picks(tmp_path, capsys, monkeypatch):
    import shutil

    root = image_folder(tmp_path / "data")
    sort, picks = tmp_path / "sort", tmp_path / "picks.csv"
    real, calls = shutil.copyfileobj, []

    def copyfileobj(f, g, *args):
        calls.append(f)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(sort))
        real(f, g, *args)

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    code, out, err = run_main(["suggest", "--dataset", root, "--budget", "2", "--out", picks, "--copy-to", sort], capsys)
    errors = [line for line in err.splitlines() if not line.startswith("fewlabels: warning: ")]  # k-means on 8 images
    assert_one_line_error(code, out, "\n".join(errors) + "\n", ["No space left"])
    assert not sort.exists() and not picks.exists() and leftovers(tmp_path) == []


def test_copy_names_keep_a_unique_name_and_tell_the_others_apart():
    from fewlabels.select.rounds import copy_names

    picks = ["d/unlabeled/x/p.png", "d/unlabeled/x__p.png", "d/unlabeled/y/p.png", "d/unlabeled/cats", "d/unlabeled/q.png"]
    assert copy_names(picks, Path("d"), ["cats"]) == ["x__p-2.png", "x__p.png", "y__p.png", "cats-2", "q.png"]
