"""Issue 27's follow-ups: a run never written into a pipeline folder, an image folder's size checked before it is read.

The same promise as tests/test_bad_input.py: one sentence, exit 2, nothing lost. ``train --out P`` where P holds a
pipeline wrote a run beside pipeline.json (``evaluate P`` then took the run, and the pipeline went stale); with
``--overwrite`` it replaces the pipeline only when every file in P is fewlabels' own. An image folder is resized as it
is read, so ``--image-size 4096`` is checked from the files' count and headers before any image is decoded. Positive
cases (what --overwrite replaces, the three demos side by side) follow the table.
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_bad_input import CaseTable, Expect, assert_one_line_error, assert_refused, base_run, image_folder, leftovers, run_main, snapshot  # noqa: F401
from test_bad_input_pipeline import PCtx

from fewlabels.utils.provenance import stamp

CASES = CaseTable()
case = CASES.case


def _unchanged(folder, before: dict):
    def check() -> None:
        assert snapshot(folder) == before, f"a refused command changed {folder}"

    return check


# ---- 1: train --out onto a pipeline folder


@case("train-out-is-a-pipeline")  # the run was written beside pipeline.json; evaluate P then took the run
def _(c: PCtx) -> Expect:
    c.fake_pipeline()
    before = snapshot(c.out)
    return Expect(c.train(), [str(c.out), "holds a pipeline", "a run needs a folder of its own", "--overwrite"],
                  after=_unchanged(c.out, before), out_may_exist=True)


@case("train-overwrite-of-a-pipeline-holding-a-user-file")  # the run was written beside the user's file and the pipeline
def _(c: PCtx) -> Expect:
    c.fake_pipeline()
    note = c.out / "3-distill" / "notes.txt"
    note.write_text("mine")
    before = snapshot(c.out)
    return Expect(c.train("--overwrite"), ["--overwrite replaces only what fewlabels wrote", str(note), "none of those"],
                  after=_unchanged(c.out, before), out_may_exist=True)


@case("train-overwrite-of-a-pipeline-beside-a-user-file")
def _(c: PCtx) -> Expect:
    c.fake_pipeline()
    (c.out / "notes.txt").write_text("mine")
    before = snapshot(c.out)
    return Expect(c.train("--overwrite"), ["only what fewlabels wrote", str(c.out / "notes.txt")],
                  after=_unchanged(c.out, before), out_may_exist=True)


@case("pipeline-overwrite-of-a-run-holding-a-users-picture-in-report")  # any report/*.png passed for report's plot
def _(c: PCtx) -> Expect:
    shutil.copytree(c._request.getfixturevalue("base_run"), c.out)
    (c.out / "report").mkdir()
    (c.out / "report" / "loss.png").write_bytes(b"report's")
    mine = c.out / "report" / "holiday.png"
    mine.write_bytes(b"mine")
    before = snapshot(c.out)
    return Expect(c.pipeline("--overwrite"), ["only what fewlabels wrote", str(mine)], after=_unchanged(c.out, before),
                  out_may_exist=True)


# ---- 2: an image folder at --image-size 4096, checked before it is read


def _no_image_decoded(c: PCtx) -> None:
    """The refusal must come before the first image is decoded: decoding one fails the test."""
    import fewlabels.data.folder

    def decoded(*_args, **_kwargs):
        raise AssertionError("an image was decoded before the size was checked")

    c.monkeypatch.setattr(fewlabels.data.folder, "_to_array", decoded)


@case("image-folder-at-4096-beyond-memory")  # read and resized first (1 GiB here), then refused by the step check
def _(c: PCtx) -> Expect:
    import fewlabels.data.resize

    root = image_folder(c.tmp / "imgs")  # 8 gray 10x10 images
    c.monkeypatch.setattr(fewlabels.data.resize, "available_bytes", lambda device: 64 * 2**20)
    _no_image_decoded(c)
    return Expect(c.train("--dataset", root, "--image-size", "4096"),
                  [f"Reading the images of {root} at 4096x4096 px needs at least 128.0 MiB", "8 images of 1x4096x4096",
                   "this machine has 64.0 MiB", "lower --image-size"])


@case("image-folder-pair-counts-the-test-images")  # train + test: both held at the new size
def _(c: PCtx) -> Expect:
    import fewlabels.data.resize

    root = c.tmp / "pair"
    image_folder(root / "train")
    image_folder(root / "test", unlabeled=0)
    c.monkeypatch.setattr(fewlabels.data.resize, "available_bytes", lambda device: 200 * 2**20)  # 8 fit, 14 do not
    _no_image_decoded(c)
    return Expect(c.train("--dataset", root, "--image-size", "4096"), ["at 4096x4096 px", "14 images", "224.0 MiB"])


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(build, tmp_path, request, capsys, monkeypatch):
    ctx = PCtx(tmp_path, request, monkeypatch)
    assert_refused(ctx, build(ctx), tmp_path, capsys)


def test_case_ids_are_unique():
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- what train --overwrite replaces


def test_train_overwrite_replaces_a_pipeline_and_says_so(tmp_path, request, capsys, monkeypatch):
    """The pipeline goes whole (its record and stage folders), with one line naming what went; P is then the run."""
    c = PCtx(tmp_path, request, monkeypatch)
    c.fake_pipeline()
    (c.out / "evaluation.json").write_bytes(stamp("json", b"{}"))  # evaluate's output of the pipeline: fewlabels' too
    code, out, err = run_main(c.train("--overwrite", "--algorithm", "supervised"), capsys)
    assert code == 0 and "Traceback" not in err, err
    said = [line for line in out.splitlines() if line.startswith("--overwrite:")]
    assert len(said) == 1 and all(n in said[0] for n in ("pipeline.json", "3-distill/", "evaluation.json")), out
    assert sorted(p.name for p in c.out.iterdir()) == ["checkpoint-00000002.pt", "config.yaml", "last.pt", "metrics.csv",
                                                       "results.json"]
    code, out, err = run_main(["evaluate", c.out, "--json", tmp_path / "e.json", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["algorithm"] == "supervised"


def test_train_overwrite_of_a_run_says_nothing_of_a_pipeline(tmp_path, request, capsys, monkeypatch):
    """A run replaced by a run: as before (no pipeline, nothing to announce), and a user's file beside it kept."""
    c = PCtx(tmp_path, request, monkeypatch)
    assert run_main(c.train(), capsys)[0] == 0
    (c.out / "notes.txt").write_text("mine")
    code, out, err = run_main(c.train("--overwrite", "--seed", "1"), capsys)
    assert code == 0, err
    assert "--overwrite:" not in out and (c.out / "notes.txt").read_text() == "mine"


def test_the_three_demos_keep_their_own_folders(tmp_path, capsys, monkeypatch):
    """make demo, then DEMO_FLAGS=--pipeline and --fixmatch: ReMixMatch stays in runs/demo, the others go beside it,
    and running one again replaces only its own demo."""
    from fewlabels import data

    real = data.where
    monkeypatch.setattr(data, "where", lambda name, data_dir=None: None if name == "fashion-mnist" else real(name, data_dir))
    monkeypatch.chdir(tmp_path)
    remix, pipeline, fixmatch = (tmp_path / "runs" / d for d in ("demo", "demo-pipeline", "demo-fixmatch"))
    code, out, err = run_main(["demo", "--iterations", "2"], capsys)
    assert code == 0, err
    assert "fewlabels train " in err and "--algorithm remixmatch" in err and (remix / "last.pt").is_file()
    code, out, err = run_main(["demo", "--pipeline", "--iterations", "1"], capsys)
    assert code == 0, err
    assert "--out runs/demo-pipeline" in err and (pipeline / "pipeline.json").is_file()
    code, out, err = run_main(["demo", "--fixmatch", "--iterations", "2"], capsys)
    assert code == 0, err
    assert "--out runs/demo-fixmatch" in err and (fixmatch / "last.pt").is_file()
    assert json.loads((pipeline / "pipeline.json").read_text())["final_stage"] and not (pipeline / "last.pt").exists()
    code, out, err = run_main(["demo", "--fixmatch", "--iterations", "2", "--seed", "1"], capsys)  # again: replaces its own
    assert code == 0, err
    assert (pipeline / "pipeline.json").is_file() and (fixmatch / "last.pt").is_file() and (remix / "last.pt").is_file()
    for folder, algorithm in ((remix, "remixmatch"), (pipeline, "distill"), (fixmatch, "fixmatch")):
        code, out, err = run_main(["evaluate", folder, "--json", tmp_path / f"{algorithm}.json", "--quiet"], capsys)
        assert code == 0, err
        assert json.loads((tmp_path / f"{algorithm}.json").read_text())["algorithm"] == algorithm
