"""The pipeline from a foundation encoder (issue 30, item 3): ``pipeline --encoder`` on digits with a tiny random ViT.

Stage 1 trains a head on the encoder's embeddings, stage 2 distils it into ``cnn-small`` with the teacher's logits
looked up per image; the folder then serves evaluate, report (which names the encoder) and export (a student that
runs without transformers); a pipeline stopped after stage 1 resumes without the encoder. The bad inputs follow, one
sentence each, exit 2, nothing written. Nothing is downloaded: the encoder is built from a small config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_input import CaseTable, Ctx, Expect, assert_refused, npz, run_main, small_arrays, snapshot

transformers = pytest.importorskip("transformers")

from fewlabels.errors import FewLabelsError  # noqa: E402
from fewlabels.train.pipeline import default_stages, run_pipeline  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
COMMON = {"dataset": "digits", "labels_per_class": 4, "model": "cnn-small", "seed": 1}
SMALL = {"teacher": {"iterations": 30, "eval_every": 30, "batch_size": 16},
         "distill": {"iterations": 8, "eval_every": 8, "checkpoint_every": 4, "batch_size": 8, "uratio": 2}}
BLOCK_TRANSFORMERS = "import sys; sys.modules['transformers'] = None; "  # any import of it fails


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A tiny random ViT and its processor, saved as save_pretrained writes them (and a text-only model beside it)."""
    folder = tmp_path_factory.mktemp("encoder") / "vit"
    torch.manual_seed(0)
    transformers.ViTModel(transformers.ViTConfig(**TINY)).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    transformers.BertModel(transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=64, vocab_size=50)).save_pretrained(folder.parent / "bert")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _own_cache(cache, monkeypatch):
    monkeypatch.setenv("FEWLABELS_CACHE", str(cache))  # never the user's ~/.cache


@pytest.fixture(scope="module")
def finished(encoder, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipelines") / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEWLABELS_CACHE", str(cache))
        run_pipeline(COMMON, out, default_stages(SMALL, encoder=str(encoder)), progress=False)
    return out


def test_a_head_on_the_embeddings_teaches_a_cnn_small_student(finished, encoder):
    record = json.loads((finished / "pipeline.json").read_text())
    teacher, student = record["stages"]
    assert [teacher["name"], student["name"], record["final_stage"]] == ["1-teacher", "2-distill", "2-distill"]
    assert teacher["encoder"] == str(encoder) and len(teacher["encoder_key"]) == 24
    assert teacher["config"]["dataset"] == str(finished / "embeddings.npz") and teacher["config"]["algorithm"] == "labelprop"
    assert student["config"]["model"] == "cnn-small" and student["teacher_from"] == "1-teacher"
    with np.load(finished / "embeddings.npz") as f:  # every training image's embedding, at the digits' own 8x8
        assert f["X"].shape == (1347, 32) and f["X_test"].shape == (450, 32) and str(f["encoder"]) == str(encoder)
    head = json.loads((finished / "1-teacher" / "results.json").read_text())
    results = json.loads((finished / "2-distill" / "results.json").read_text())
    assert results["final_teacher_acc"] == pytest.approx(head["test_accuracy"])  # the looked-up head is the stage's model
    assert 0 <= results["test_accuracy"] <= 1 and results["iterations"] == 8


def test_the_folder_evaluates_and_the_report_names_the_encoder(finished, encoder, tmp_path, capsys):
    code, out, err = run_main(["evaluate", finished, "--json", tmp_path / "e.json", "--quiet"], capsys)
    assert code == 0, err
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["model"] == "cnn-small" and evaluation["n"] == 450 and evaluation["algorithm"] == "distill"
    code, out, err = run_main(["report", finished, "--out", tmp_path / "r.html"], capsys)
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert f"Taught by the foundation encoder {encoder}" in page and "1-teacher" in page


def test_the_exported_student_predicts_without_transformers(finished, tmp_path):
    """Export and predict in a fresh interpreter where transformers cannot be imported: the model is the student."""
    code = (BLOCK_TRANSFORMERS + "import torch, fewlabels; from fewlabels.cli import main; "
            "assert main(['export', sys.argv[1], '--out', sys.argv[2]]) == 0; "
            "x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8); "
            "print(fewlabels.load(sys.argv[1]).predict(x).shape, tuple(torch.jit.load(sys.argv[2])(x).shape))")
    done = subprocess.run([sys.executable, "-c", code, str(finished), str(tmp_path / "m.ts")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "(3,) (3, 10)"


def test_a_pipeline_stopped_after_the_teacher_resumes_without_the_encoder(finished, encoder, tmp_path):
    """Stage 1 done, stage 2 not begun, the folder moved: resume skips the teacher and distils from the embeddings
    beside it, in an interpreter where transformers cannot be imported, to the uninterrupted pipeline's result.
    The first run is the Python API's (``fewlabels.pipeline(..., encoder=)``), on the images it was handed."""
    import fewlabels

    first = fewlabels.pipeline("digits", labels_per_class=4, model="cnn-small", seed=1, stages=SMALL, encoder=str(encoder),
                               out=tmp_path / "p")
    assert first.pipeline["stages"][0]["encoder"] == str(encoder) and first.config.algorithm == "distill"
    moved = (tmp_path / "p").rename(tmp_path / "moved")
    shutil.rmtree(moved / "2-distill")
    record = json.loads((moved / "pipeline.json").read_text())
    record["stages"][1]["status"], record["final_stage"] = "pending", None
    (moved / "pipeline.json").write_text(json.dumps(record))
    teacher_before = snapshot(moved / "1-teacher")
    code = BLOCK_TRANSFORMERS + "from fewlabels.cli import main; sys.exit(main(['pipeline', '--resume', sys.argv[1], '--quiet']))"
    done = subprocess.run([sys.executable, "-c", code, str(moved)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert snapshot(moved / "1-teacher") == teacher_before
    again = json.loads((moved / "2-distill" / "results.json").read_text())
    first = json.loads((finished / "2-distill" / "results.json").read_text())
    assert again["test_accuracy"] == first["test_accuracy"] and again["final_teacher_acc"] == first["final_teacher_acc"]
    assert json.loads((moved / "pipeline.json").read_text())["final_stage"] == "2-distill"


def test_overwrite_may_replace_the_pipelines_own_embeddings(finished, tmp_path):
    from fewlabels.storage.replacing import replaceable

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    assert copy / "embeddings.npz" in replaceable(copy, overwrite=True)  # stamped as fewlabels' own when written


def test_a_student_of_the_head_may_not_mix_images(finished, tmp_path):
    with pytest.raises(FewLabelsError, match="cannot use mixup"):
        run_pipeline(COMMON, tmp_path / "p", default_stages({"distill": {"options": {"mixup": 0.5}}}, encoder="x"),
                     progress=False)
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------- bad inputs: one sentence, exit 2, nothing written

CASES = CaseTable()
case = CASES.case
FAST = ["--stage", "teacher.iterations=1", "--distill-iterations", "1", "--quiet"]


class ECtx(Ctx):
    def pipeline(self, *args) -> list:
        return ["pipeline", "--dataset", "digits", "--labels-per-class", "2", "--out", self.out, *FAST, *args]


@case("encoder-with-a-feature-dataset")
def _(c: ECtx) -> Expect:
    data = npz(c.tmp / "features.npz", **dict(zip(("X", "y"), small_arrays(shape=(6,)))))
    return Expect(c.pipeline("--dataset", data, "--encoder", c.encoder), ["--encoder embeds images", "feature vectors"])


@case("encoder-with-pretrain-iterations")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.encoder, "--pretrain-iterations", "5"),
                  ["--pretrain-iterations does not apply with --encoder", "--stage teacher."])


@case("encoder-with-finetune-algorithm")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.encoder, "--finetune-algorithm", "fixmatch"),
                  ["--finetune-algorithm does not apply with --encoder"])


@case("encoder-with-a-pretrain-stage-setting")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.encoder, "--stage", "pretrain.lr=0.1"),
                  ["Unknown pipeline stage 'pretrain'", "teacher, distill"])


@case("encoder-student-with-mixup")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.encoder, "--stage", "distill.options.mixup=0.5"), ["cannot use mixup"])


@case("encoder-missing-folder")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.tmp / "nowhere" / "vit"), ["neither a model folder nor a Hugging Face model id"])


@case("encoder-folder-without-config")
def _(c: ECtx) -> Expect:
    (c.tmp / "empty").mkdir()
    return Expect(c.pipeline("--encoder", c.tmp / "empty"), ["has no config.json", "save_pretrained"])


@case("encoder-text-only-model")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", c.encoder.parent / "bert"), ["is not an image model"])


@case("encoder-hub-name-offline")
def _(c: ECtx) -> Expect:
    c.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    c.monkeypatch.setenv("HF_HOME", str(c.tmp / "empty-hf-home"))
    return Expect(c.pipeline("--encoder", "nobody/no-such-model"), ["HF_HUB_OFFLINE", "local folder"])


@case("encoder-without-transformers")
def _(c: ECtx) -> Expect:
    c.monkeypatch.setitem(sys.modules, "transformers", None)
    return Expect(c.pipeline("--encoder", c.encoder), ["pip install 'fewlabels[foundation]'"])


@case("encoder-empty")
def _(c: ECtx) -> Expect:
    return Expect(c.pipeline("--encoder", ""), ["--encoder is empty"])


@case("encoder-with-resume")
def _(c: ECtx) -> Expect:
    return Expect(["pipeline", "--resume", c.tmp / "p", "--encoder", c.encoder], ["give no other setting with it"])


@case("encoder-overwrite-keeps-a-users-embeddings-file")  # the name the pipeline writes; the user's file is theirs
def _(c: ECtx) -> Expect:
    c.out.mkdir()
    npz(c.out / "embeddings.npz", X=np.zeros((2, 3)), y=np.zeros(2, dtype=np.int64))
    before = snapshot(c.out)

    def unchanged() -> None:
        assert snapshot(c.out) == before

    return Expect(c.pipeline("--encoder", c.encoder, "--overwrite"), ["only what fewlabels wrote", "embeddings.npz"],
                  after=unchanged, out_may_exist=True)


@pytest.mark.parametrize("build", CASES)
def test_bad_encoder_pipeline_input_is_one_sentence_exit_2_and_leaves_nothing(build, encoder, tmp_path, request, capsys,
                                                                               monkeypatch):
    ctx = ECtx(tmp_path, request)
    ctx.encoder, ctx.monkeypatch = encoder, monkeypatch
    assert_refused(ctx, build(ctx), tmp_path, capsys)
