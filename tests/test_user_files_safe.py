"""A user's file in any place a command writes is never deleted, moved or overwritten, with or without --overwrite.

For each writing command a user file is planted at the output path itself and inside the output folder
(under the very names the command writes, where it writes several), the command runs (with and without
``--overwrite`` where it has one), and the user file must be byte-identical afterwards. The command may
refuse (exit 2, one sentence, no traceback) or write elsewhere / beside it (exit 0); nothing else passes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import image_folder, npz, run_main, small_arrays

from fewlabels.cli import main

USER_BYTES = b"the user's own file: not written by fewlabels\n"

# (case id) -> why it fails today; being fixed by the command's owner (issue 27), so not strict
BEING_FIXED: dict[str, str] = {}
# (case id) -> a bug this test found that nobody is fixing yet: strict, so the fix shows up as XPASS
FOUND: dict[str, str] = {}


@dataclass
class Ctx:
    tmp: Path
    fixtures: dict[str, Path]

    def copy(self, name: str) -> Path:
        dst = self.tmp / name
        (shutil.copytree if self.fixtures[name].is_dir() else shutil.copy)(self.fixtures[name], dst)
        return dst

    def plant(self, path: Path) -> Path:
        """A user file at ``path`` (its folders created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(USER_BYTES)
        return path


TRAIN = ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2", "--batch-size", "8", "--uratio", "1",
         "--eval-every", "2", "--checkpoint-every", "2", "--quiet"]
PIPELINE = ["pipeline", "--dataset", "digits", "--labels-per-class", "2", "--pretrain-iterations", "1", "--finetune-iterations",
            "1", "--distill-iterations", "1", "--stage", "pretrain.batch_size=8", "--stage", "finetune.batch_size=8",
            "--stage", "finetune.uratio=1", "--stage", "distill.batch_size=8", "--stage", "distill.uratio=1", "--quiet"]

# each case: (id, build(ctx) -> (argv, [planted user files]), takes --overwrite)
CASES: list[tuple[str, Callable[[Ctx], tuple[list, list[Path]]], bool]] = []


def case(case_id: str, overwrite: bool = False):
    def register(fn):
        CASES.append((case_id, fn, overwrite))
        return fn
    return register


# ---- train --out


@case("train --out is a user file", overwrite=True)
def _(c: Ctx):
    f = c.plant(c.tmp / "out")
    return [*TRAIN, "--out", f], [f]


@case("train --out folder holds a user file", overwrite=True)
def _(c: Ctx):
    f = c.plant(c.tmp / "out" / "mine.txt")
    return [*TRAIN, "--out", c.tmp / "out"], [f]


@case("train --out run folder holds a user file", overwrite=True)
def _(c: Ctx):
    run = c.copy("run")
    f = c.plant(run / "mine.txt")
    g = c.plant(run / "report" / "mine.png")
    return [*TRAIN, "--out", run], [f, g]


# ---- pipeline --out


@case("pipeline --out is a user file", overwrite=True)
def _(c: Ctx):
    f = c.plant(c.tmp / "out")
    return [*PIPELINE, "--out", f], [f]


@case("pipeline --out folder holds a user file", overwrite=True)
def _(c: Ctx):
    f = c.plant(c.tmp / "out" / "mine.txt")
    return [*PIPELINE, "--out", c.tmp / "out"], [f]


@case("pipeline --out stage folder holds a user file", overwrite=True)
def _(c: Ctx):
    f = c.plant(c.tmp / "out" / "2-finetune" / "mine.txt")
    return [*PIPELINE, "--out", c.tmp / "out"], [f]


@case("pipeline --out pipeline holds a user file in a stage", overwrite=True)
def _(c: Ctx):
    pipe = c.copy("pipeline")
    f = c.plant(pipe / "2-finetune" / "mine.txt")
    g = c.plant(pipe / "mine.txt")
    return [*PIPELINE, "--out", pipe], [f, g]


# ---- one output file: the user's file at its path (given, and the default place)


def _single(case_id: str, argv: Callable[[Ctx, Path], list], default: str | None = None):
    """Two cases: the user's file at the given output path, and (``default``: its name in the run folder) there."""
    @case(f"{case_id} is a user file")
    def _(c: Ctx):
        f = c.plant(c.tmp / "user" / f"mine{Path(case_id.split()[-1]).suffix}")
        return argv(c, f), [f, c.plant(c.tmp / "user" / "other.txt")]

    if default is not None:
        @case(f"{case_id.split(' --')[0]} default {default} is a user file")
        def _(c: Ctx):
            run = c.copy("run")
            f = c.plant(run / default)
            return [a for a in argv(c, None) if a is not None], [f]


def _run(c: Ctx) -> Path:
    return c.tmp / "run" if (c.tmp / "run").exists() else c.copy("run")


_single("predict --out PREDS.csv", lambda c, f: ["predict", _run(c), c.copy("imgs") / "a", "--out", f, "--quiet"])
_single("export --out model.ts", lambda c, f: ["export", _run(c), *(["--out", f] if f else [])], default="model.ts")
_single("embed --out EMB.npz", lambda c, f: ["embed", _run(c), "--out", f])
_single("evaluate --json OUT.json", lambda c, f: ["evaluate", _run(c), *(["--json", f] if f else []), "--quiet"],
        default="evaluation.json")
_single("probe --json OUT.json", lambda c, f: ["probe", _run(c), *(["--json", f] if f else [])], default="probe-knn.json")
_single("report --out REPORT.html", lambda c, f: ["report", _run(c), *(["--out", f] if f else []), "--quiet"],
        default="report.html")
_single("check-labels --out LABELS.csv", lambda c, f: ["check-labels", _run(c), *(["--out", f] if f else [])],
        default="check-labels.csv")
_single("suggest --out PICKS.csv", lambda c, f: ["suggest", "--dataset", c.copy("imgs"), "--budget", "2", "--out", f])
_single("augment-preview --out PREVIEW.png", lambda c, f: ["augment-preview", "--dataset", "digits", "--n", "2",
                                                            "--strong-views", "1", "--out", f])
_single("merge-labels --out NEW.npz", lambda c, f: ["merge-labels", "--dataset", c.copy("arrays.npz"), "--labels",
                                                     c.copy("picks.csv"), "--out", f])


@case("report plots folder holds user files named like its plots")
def _(c: Ctx):
    run = c.copy("run")
    mine = [c.plant(run / "report" / f"{name}.png") for name in ("accuracy", "loss", "confusion", "reliability", "mistakes")]
    return ["report", run, "--out", c.tmp / "r.html", "--quiet"], [*mine, c.plant(run / "report" / "mine.txt")]


@case("suggest --copy-to is a user file")
def _(c: Ctx):
    f = c.plant(c.tmp / "copies")
    return ["suggest", "--dataset", c.copy("imgs"), "--budget", "2", "--out", c.tmp / "p.csv", "--copy-to", f], [f]


@case("suggest --copy-to holds a user file")
def _(c: Ctx):
    f = c.plant(c.tmp / "copies" / "u0.png")
    return ["suggest", "--dataset", c.copy("imgs"), "--budget", "2", "--out", c.tmp / "p.csv", "--copy-to", c.tmp / "copies"], [f]


@case("merge-labels --sorted onto a user file of the same name in the class folder")
def _(c: Ctx):
    imgs = c.copy("imgs")
    f = c.plant(imgs / "a" / "u0.png")
    sorted_dir = c.tmp / "sorted" / "a"
    sorted_dir.mkdir(parents=True)
    shutil.copy(imgs / "unlabeled" / "u0.png", sorted_dir / "u0.png")
    return ["merge-labels", "--dataset", imgs, "--sorted", c.tmp / "sorted"], [f]


@case("check-labels --out folder holds a user file")
def _(c: Ctx):
    f = c.plant(c.tmp / "o" / "check-labels.csv")
    return ["check-labels", _run(c), "--out", c.tmp / "o"], [f]


@case("symmetries --out is a user file")
def _(c: Ctx):
    f = c.plant(c.tmp / "sym")
    return ["symmetries", "--dataset", "digits", "--labels-per-class", "2", "--out", f], [f]


@case("symmetries --out holds user files named like its outputs")
def _(c: Ctx):
    mine = [c.plant(c.tmp / "sym" / n) for n in ("symmetries.json", "symmetries.png", "mine.txt")]
    return ["symmetries", "--dataset", "digits", "--labels-per-class", "2", "--out", c.tmp / "sym"], mine


@case("augment-preview --out folder holds a user file")
def _(c: Ctx):
    f = c.plant(c.tmp / "prev" / "mine.txt")
    return ["augment-preview", "--dataset", "digits", "--n", "2", "--out", c.tmp / "prev" / "p.png"], [f]


# ---------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user-files")
    assert main([*TRAIN, "--out", str(root / "run")]) == 0
    assert main([*PIPELINE, "--out", str(root / "pipeline")]) == 0
    image_folder(root / "imgs")
    X, y = small_arrays()
    npz(root / "arrays.npz", X=X, y=y)
    (root / "picks.csv").write_text(f"rank,sample,label\n1,{int(np.flatnonzero(y == -1)[0])},1\n")
    return {"run": root / "run", "pipeline": root / "pipeline", "imgs": root / "imgs", "arrays.npz": root / "arrays.npz",
            "picks.csv": root / "picks.csv"}


def _params() -> list:
    params = []
    for case_id, build, takes_overwrite in CASES:
        for overwrite in ((False, True) if takes_overwrite else (False,)):
            pid = f"{case_id}{' --overwrite' if overwrite else ''}"
            marks = []
            if pid in FOUND:
                marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {FOUND[pid]}")]
            elif pid in BEING_FIXED:
                marks = [pytest.mark.xfail(strict=False, reason=f"being fixed (issue 27): {BEING_FIXED[pid]}")]
            params.append(pytest.param(build, overwrite, id=pid, marks=marks))
    return params


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("build,overwrite", _params())
def test_a_user_file_where_a_command_writes_is_kept_byte_for_byte(build, overwrite, fixtures, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, planted = build(Ctx(tmp_path, fixtures))
    code, out, err = run_main([*argv, *(["--overwrite"] if overwrite else [])], capsys)
    shown = f"{' '.join(map(str, argv))}\nexit {code}\nstderr: {err[-2000:]}"
    assert "Traceback" not in err and "Traceback" not in out, shown
    for f in planted:
        assert f.is_file() and not f.is_symlink(), f"{f} was deleted or moved\n{shown}"
        assert f.read_bytes() == USER_BYTES, f"{f} was overwritten\n{shown}"
    if code != 0:
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("fewlabels: error: "), shown
    assert [p for p in tmp_path.rglob("*.tmp")] == [], shown


def test_case_ids_are_unique_and_every_listed_failure_is_a_case():
    ids = [p.id for p in _params()]
    assert len(ids) == len(set(ids))
    assert set(FOUND) | set(BEING_FIXED) <= set(ids)
