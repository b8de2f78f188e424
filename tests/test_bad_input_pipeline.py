"""Bad input for the pipeline and the training settings around it (issue 27): one sentence, exit 2, nothing lost.

The same promise as tests/test_bad_input.py, for what its sweep found here: ``pipeline --out`` deleting or writing
into what it did not write, a damaged pipeline.json crashing every command that reads the folder, a model file
without its config, an image size whose resized copy cannot fit in memory, and --augment values that are empty or
mean nothing for feature vectors. Positive cases (what --overwrite does replace) follow the table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_bad_input import CaseTable, Ctx, Expect, assert_one_line_error, assert_refused, base_run, leftovers, run_main, snapshot  # noqa: F401

TINY = ["--pretrain-iterations", "1", "--finetune-iterations", "1", "--distill-iterations", "1"]


class PCtx(Ctx):
    """A Ctx that can also monkeypatch (the memory a machine has)."""

    def __init__(self, tmp: Path, request, monkeypatch) -> None:
        super().__init__(tmp, request)
        self.monkeypatch = monkeypatch

    def pipeline(self, *args) -> list:
        """A tiny digits pipeline into ``self.out``, one step per stage."""
        return ["pipeline", "--dataset", "digits", "--labels-per-class", "2", *TINY, "--stage", "finetune.batch_size=8",
                "--stage", "distill.batch_size=8", "--stage", "pretrain.batch_size=8", "--out", self.out, "--quiet", *args]

    def fake_pipeline(self, folder: Path | None = None) -> Path:
        """A finished one-stage pipeline folder (its stage a copy of the base run), as the pipeline writes it."""
        folder = folder or self.out
        stage = folder / "3-distill"
        stage.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self._request.getfixturevalue("base_run"), stage)
        config = yaml.safe_load((stage / "config.yaml").read_text())
        record = {"format": 1, "common": {"dataset": "digits"}, "final_stage": "3-distill",
                  "stages": [{"name": "3-distill", "init_from": None, "teacher_from": None, "config": config,
                              "status": "done"}]}
        (folder / "pipeline.json").write_text(json.dumps(record))
        return folder


CASES = CaseTable()
case = CASES.case


def _unchanged(folder: Path, before: dict) -> Callable[[], None]:
    def check() -> None:
        assert snapshot(folder) == before, f"a refused command changed {folder}"

    return check


# ---- 1: pipeline --out never deletes what it did not write


@case("pipeline-out-holds-a-user-file-in-a-stage-folder")  # the stage folder was removed, without --overwrite
def _(c: PCtx) -> Expect:
    note = c.out / "2-finetune" / "notes.txt"
    note.parent.mkdir(parents=True)
    note.write_text("mine")
    before = snapshot(c.out)
    return Expect(c.pipeline(), [str(c.out), str(note), "not a run's or a pipeline's own file"], after=_unchanged(c.out, before),
                  out_may_exist=True)


@case("pipeline-overwrite-keeps-a-user-file-in-a-stage-folder")  # deleted with the earlier pipeline's stage
def _(c: PCtx) -> Expect:
    c.fake_pipeline()
    note = c.out / "3-distill" / "notes.txt"
    note.write_text("mine")
    before = snapshot(c.out)
    return Expect(c.pipeline("--overwrite"), ["--overwrite replaces only what fewlabels wrote", str(note), "none of those"],
                  after=_unchanged(c.out, before), out_may_exist=True)


# ---- 2: pipeline --out onto a training run


@case("pipeline-out-is-a-finished-run")  # the stages were written into the run's folder; evaluate P: the old run
def _(c: PCtx) -> Expect:
    shutil.copytree(c._request.getfixturevalue("base_run"), c.out)
    before = snapshot(c.out)
    return Expect(c.pipeline(), [str(c.out), "holds a finished training run", "--overwrite"],
                  after=_unchanged(c.out, before), out_may_exist=True)


@case("pipeline-overwrite-of-a-run-holding-a-user-file")
def _(c: PCtx) -> Expect:
    shutil.copytree(c._request.getfixturevalue("base_run"), c.out)
    (c.out / "notes.txt").write_text("mine")
    before = snapshot(c.out)
    return Expect(c.pipeline("--overwrite"), ["only what fewlabels wrote", str(c.out / "notes.txt")],
                  after=_unchanged(c.out, before), out_may_exist=True)


# ---- 3: a damaged pipeline.json, for every command that reads the folder


def _stages_empty(record: dict) -> dict:
    return {**record, "stages": []}


def _stage_without_config(record: dict) -> dict:
    del record["stages"][0]["config"]
    return record


def _a_list(record: dict) -> list:
    return [record]


def _final_stage_a_number(record: dict) -> dict:
    return {**record, "final_stage": 3}


SHAPES = {"stages-empty": (_stages_empty, "'stages' must be a non-empty list"),
          "stage-without-config": (_stage_without_config, "stage 3-distill has no 'config'"),
          "a-list": (_a_list, "it holds a JSON list"),
          "final-stage-a-number": (_final_stage_a_number, "'final_stage' is 3")}


def _manifest_case(shape: str, command: str) -> Callable[[PCtx], Expect]:
    def build(c: PCtx) -> Expect:
        p = c.fake_pipeline(c.tmp / "p")
        manifest = p / "pipeline.json"
        damage, words = SHAPES[shape]
        manifest.write_text(json.dumps(damage(json.loads(manifest.read_text()))))
        before = snapshot(p)
        argv = {"resume": ["pipeline", "--resume", p, "--quiet"], "evaluate": ["evaluate", p, "--quiet"],
                "probe": ["probe", p], "report": ["report", p, "--quiet"], "init": c.train("--init", p)}[command]
        return Expect(argv, [str(manifest), words], after=_unchanged(p, before))

    return build


# a list was already refused by --resume, which reads the whole record; the other readers took final_stage alone
MANIFEST_READERS = ("resume", "evaluate", "probe", "report", "init")
for _shape in SHAPES:
    for _command in MANIFEST_READERS:
        if (_shape, _command) not in (("a-list", "resume"),):
            case(f"manifest-{_shape}-{_command}")(_manifest_case(_shape, _command))


# ---- 4: embed on a torch file that is not a whole model record


@case("embed-model-file-without-config")  # KeyError: 'config'
def _(c: PCtx) -> Expect:
    path = c.tmp / "m.pt"
    torch.save({"fewlabels_model": 1, "state_dict": {}}, path)
    return Expect(["embed", path, "--out", c.out / "e.npz"], [str(path), "has no 'config'", "Run.save()"])


# ---- 5: images enlarged beyond memory


@case("image-size-beyond-memory")  # 8 px digits at 4096 px passed the check, then asked the allocator for 90 GB
def _(c: PCtx) -> Expect:
    import fewlabels.data.resize

    c.monkeypatch.setattr(fewlabels.data.resize, "available_bytes", lambda device: 16 * 2**30)
    return Expect(c.train("--image-size", "4096"), ["Resizing the images to 4096x4096 px needs at least", "GiB",
                                                    "1797 images", "this machine has 16.0 GiB", "lower --image-size"])


# ---- 6, 7: --augment


for _value, _id in ((",", "comma"), (" ", "blank"), ("rot90,,hflip", "empty-item")):
    def _empty(c: PCtx, value: str = _value) -> Expect:
        return Expect(c.train("--augment", value), ["augment must be auto, hand, all or transformation names",
                                                    "none of them empty", repr(value)])

    case(f"augment-{_id}")(_empty)


def _features(c: PCtx) -> Path:
    rng = np.random.default_rng(0)
    path = c.tmp / "features.npz"
    np.savez(path, X=rng.random((40, 6)).astype(np.float32), y=np.array([0, 1] * 5 + [-1] * 30))
    return path


for _value in ("rot90", "all", "hflip,rot180"):
    def _on_features(c: PCtx, value: str = _value) -> Expect:
        path = _features(c)
        return Expect(c.train("--dataset", path, "--batch-size", "4", "--augment", value),
                      [f"{path} holds feature vectors, not images; flips and rotations do not apply", f"--augment {value}"])

    case(f"augment-{_value.replace(',', '-')}-on-features")(_on_features)


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(build, tmp_path, request, capsys, monkeypatch):
    ctx = PCtx(tmp_path, request, monkeypatch)
    assert_refused(ctx, build(ctx), tmp_path, capsys)


def test_case_ids_are_unique():
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- what --overwrite does replace


def test_overwrite_replaces_a_run_and_an_earlier_pipeline_and_says_so(tmp_path, request, capsys, monkeypatch):
    """A run folder made a pipeline (evaluate P then evaluates the pipeline), then that pipeline replaced; each time
    one line names what went, and nothing but fewlabels' files did."""
    c = PCtx(tmp_path, request, monkeypatch)
    shutil.copytree(request.getfixturevalue("base_run"), c.out)
    (c.out / "evaluation.json").write_bytes(_marked(".json"))  # evaluate's output beside the run: fewlabels' too
    code, out, err = run_main(c.pipeline("--overwrite"), capsys)
    assert code == 0 and "Traceback" not in err, err
    said = [line for line in out.splitlines() if line.startswith("--overwrite:")]
    assert len(said) == 1 and "last.pt" in said[0] and "evaluation.json" in said[0], out
    assert not (c.out / "last.pt").exists() and (c.out / "3-distill" / "last.pt").is_file()
    code, out, err = run_main(["evaluate", c.out, "--json", tmp_path / "e.json", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["algorithm"] == "distill"  # the pipeline's final model
    code, out, err = run_main(c.pipeline("--overwrite", "--seed", "1"), capsys)
    assert code == 0, err
    said = [line for line in out.splitlines() if line.startswith("--overwrite:")]
    assert len(said) == 1 and all(n in said[0] for n in ("1-pretrain/", "2-finetune/", "3-distill/", "pipeline.json"))
    assert json.loads((c.out / "pipeline.json").read_text())["common"]["seed"] == 1


def test_train_overwrite_and_checkpoint_pruning_keep_a_users_checkpoint_named_file(tmp_path, capsys):
    """The one definition of a run's files (RunFolder.run_files): a user's checkpoint-best.pt is not one of them."""
    out = tmp_path / "out"
    args = ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "4", "--batch-size", "8",
            "--uratio", "1", "--eval-every", "2", "--checkpoint-every", "2", "--out", out, "--quiet"]
    assert run_main(args, capsys)[0] == 0
    (out / "checkpoint-best.pt").write_bytes(b"mine")
    code, stdout, err = run_main([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert (out / "checkpoint-best.pt").read_bytes() == b"mine"


def _marked(suffix: str) -> bytes:
    """A small evaluate/report output as fewlabels writes it (with its provenance mark)."""
    import io

    from PIL import Image

    from fewlabels.utils.provenance import stamp

    if suffix == ".png":
        buf = io.BytesIO()
        Image.new("L", (2, 2)).save(buf, format="PNG")
        return stamp("png", buf.getvalue())
    return stamp("json", b"{}") if suffix == ".json" else stamp("html", b"<html></html>")


def test_what_overwrite_may_replace_in_a_pipeline_folder(tmp_path):
    """A run's files, a pipeline record (damaged too), evaluations and report plots; never a link, an exported model,
    a checkpoint-like name of the user's, a pipeline.json of another tool, a deeper folder."""
    from fewlabels.errors import FewLabelsError
    from fewlabels.storage.replacing import replace, replaceable

    p = tmp_path / "p"
    stage = p / "1-pretrain"
    (stage / "report").mkdir(parents=True)
    ours = [stage / n for n in ("config.yaml", "last.pt", "checkpoint-00000002.pt", "results.json", "metrics.csv",
                                ".last.pt.12.tmp", "evaluation.json", "report.html")] + [stage / "report" / "loss.png",
                                                                                          p / "evaluation.json"]
    for file in ours:
        file.write_bytes(_marked(file.suffix) if file.suffix in (".json", ".html", ".png") and file.name != "results.json"
                         else b"x")  # evaluate's and report's outputs say in the file that fewlabels wrote them
    (p / "pipeline.json").write_text(json.dumps({"format": 1, "stages": []}))  # damaged, but ours
    ours.append(p / "pipeline.json")
    assert replaceable(tmp_path / "new", False) == [] and replaceable(tmp_path / "new", True) == []
    assert sorted(replaceable(p, True)) == sorted(ours)
    with pytest.raises(FewLabelsError, match="already holds a pipeline; continue it with --resume"):
        replaceable(p, False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "mine.txt").write_text("mine")
    foreign = {stage / "model.ts": "x", stage / "checkpoint-best.pt": "x", p / "notes.txt": "x", stage / "sub" / "a": "x",
               stage / "evaluation.json": "{}", stage / "report" / "loss.png": "x",  # names of ours, without the mark
               p / "pipeline.json": "[1, 2]", p / "data": None}
    for path, text in foreign.items():
        kept = path.read_bytes() if path.exists() else None
        if text is None:
            path.symlink_to(tmp_path / "elsewhere")
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        shown = path if path.parent.name != "sub" else path.parent
        with pytest.raises(FewLabelsError, match=f"only what fewlabels wrote.*, and {shown} is none of those"):
            replaceable(p, True)
        path.unlink()
        if kept is not None:
            path.write_bytes(kept)
    said = replace(p, replaceable(p, True))
    assert said.startswith(f"--overwrite: replaced what fewlabels wrote in {p}: 1-pretrain/, evaluation.json, pipeline.json")
    assert sorted(x.name for x in p.rglob("*")) == ["1-pretrain", "sub"]  # an empty folder of the user's stays
    assert (tmp_path / "elsewhere" / "mine.txt").is_file()
