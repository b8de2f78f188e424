"""The pipeline: stages as run folders, the hand-over, resume where it stopped, the final model behind the folder."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from fewlabels.api import load
from fewlabels.errors import FewLabelsError
from fewlabels.train.pipeline import default_stages, resume_pipeline, run_pipeline, summary_table

COMMON = {"dataset": "digits", "labels_per_class": 4, "batch_size": 8, "uratio": 2, "seed": 0}
SMALL = {"pretrain": {"iterations": 6}, "finetune": {"iterations": 8, "checkpoint_every": 4, "keep_checkpoints": 2},
         "distill": {"iterations": 6, "checkpoint_every": 3, "keep_checkpoints": 2}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "p"
    torch.set_num_threads(1)
    record = run_pipeline(COMMON, out, default_stages(SMALL), progress=False)
    return out, record


def test_stages_are_run_folders_handed_over_in_order(finished):
    out, record = finished
    assert [s["name"] for s in record["stages"]] == ["1-pretrain", "2-finetune", "3-distill"]
    assert record["final_stage"] == "3-distill" and all(s["status"] == "done" for s in record["stages"])
    finetune = json.loads((out / "2-finetune" / "results.json").read_text())
    assert finetune["init"]["path"] == str(out / "1-pretrain")
    distill = json.loads((out / "3-distill" / "results.json").read_text())
    assert distill["algorithm_options"]["teacher"] == str(out / "2-finetune")
    assert json.loads((out / "pipeline.json").read_text()) == record
    table = summary_table(record)
    assert "final model: 3-distill" in table and f"{distill['test_accuracy']:.4f}" in table


def test_the_pipeline_folder_stands_for_its_final_model(finished):
    out, _ = finished
    run = load(out)
    assert run.config.algorithm == "distill" and run.results["test_accuracy"] == load(out / "3-distill").results["test_accuracy"]


def test_an_interrupted_pipeline_continues_where_it_stopped_and_ends_the_same(finished, tmp_path):
    out, record = finished
    copy = tmp_path / "p"
    shutil.copytree(out, copy)
    # as if killed in stage 2 after its step-4 checkpoint: stage 3 never started
    shutil.rmtree(copy / "3-distill")
    stage2 = copy / "2-finetune"
    (stage2 / "results.json").unlink()
    (stage2 / "last.pt").unlink()
    shutil.copy(stage2 / "checkpoint-00000004.pt", stage2 / "last.pt")
    manifest = json.loads((copy / "pipeline.json").read_text())
    manifest["final_stage"] = None
    for s in manifest["stages"][1:]:
        s["status"] = "pending"
    for s in manifest["stages"]:  # the stages' folders moved with the copy
        s["config"] = json.loads(json.dumps(s["config"]).replace(str(out), str(copy)))
    (copy / "pipeline.json").write_text(json.dumps(manifest))
    stage1_before = (copy / "1-pretrain" / "last.pt").stat().st_mtime_ns
    resumed = resume_pipeline(copy, progress=False)
    assert (copy / "1-pretrain" / "last.pt").stat().st_mtime_ns == stage1_before  # finished stages are skipped
    assert resumed["final_stage"] == "3-distill"
    for stage in ("2-finetune", "3-distill"):
        assert_same_training_state(out / stage, copy / stage)


def assert_same_training_state(a_dir, b_dir):
    """The model, the EMA model and the optimizer of two runs' last checkpoints, tensor by tensor."""
    a = torch.load(a_dir / "last.pt", weights_only=True)
    b = torch.load(b_dir / "last.pt", weights_only=True)
    assert a["step"] == b["step"]
    for part in ("model", "ema", "optimizer"):
        flat_a, flat_b = _tensors(a[part]), _tensors(b[part])
        assert flat_a.keys() == flat_b.keys() and flat_a, part
        for key in flat_a:
            assert torch.equal(flat_a[key], flat_b[key]), (a_dir.name, part, key)


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return {k: v for key, sub in items for k, v in _tensors(sub, f"{prefix}/{key}").items()}


def test_a_moved_pipeline_killed_in_distillation_resumes_from_its_new_place(finished, tmp_path):
    """The stage's checkpoint names the teacher where it was; the resumed stage must learn from where it is now."""
    out, _ = finished
    before = tmp_path / "before"
    run_pipeline(COMMON, before, default_stages(SMALL), progress=False)
    distill = before / "3-distill"
    (distill / "results.json").unlink()  # as if killed after stage 3's step-3 checkpoint
    (distill / "last.pt").unlink()
    shutil.copy(distill / "checkpoint-00000003.pt", distill / "last.pt")
    moved = before.rename(tmp_path / "after")
    record = resume_pipeline(moved, progress=False)
    assert record["final_stage"] == "3-distill"
    results = json.loads((moved / "3-distill" / "results.json").read_text())
    assert results["algorithm_options"]["teacher"] == str(moved / "2-finetune")
    assert_same_training_state(out / "3-distill", moved / "3-distill")  # and it ends as the unbroken pipeline did


def test_bad_pipeline_settings_are_refused_before_any_work(tmp_path):
    with pytest.raises(FewLabelsError, match="Unknown pipeline stage 'finetuning'"):
        default_stages({"finetuning": {"iterations": 3}})
    with pytest.raises(FewLabelsError, match="pipeline stage 2-finetune: Unknown config key 'lrr'"):
        run_pipeline(COMMON, tmp_path / "p", default_stages({"finetune": {"lrr": 0.1}}), progress=False)
    with pytest.raises(FewLabelsError, match="softmatch has no option 'n_sigmaa'"):
        run_pipeline(COMMON, tmp_path / "p", default_stages({"finetune": {"options": {"n_sigmaa": 3}}}), progress=False)
    assert not (tmp_path / "p").exists()
    with pytest.raises(FewLabelsError, match="Unknown dataset 'digitz'"):  # refused by the first stage: nothing is left
        run_pipeline({**COMMON, "dataset": "digitz"}, tmp_path / "p", default_stages(SMALL), progress=False)
    assert not (tmp_path / "p").exists()
    with pytest.raises(FewLabelsError, match="holds no pipeline"):
        resume_pipeline(tmp_path)


def test_pipeline_command_and_its_bad_input(finished, tmp_path):
    out, _ = finished

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fewlabels", "pipeline", *map(str, args)], capture_output=True, text=True)

    proc = cli("--resume", out)  # finished: every stage is skipped, the table comes back
    assert proc.returncode == 0 and "final model: 3-distill" in proc.stdout, proc.stderr
    for args, words in ((["--resume", out, "--seed", "3"], "give no other setting with it"),
                        (["--stage", "lr=0.1", "--out", tmp_path / "q"], "must name its stage"),
                        (["--resume", out, "--overwrite"], "give no other setting with it"),
                        (["--dataset", "digits", "--out", out], "already holds a pipeline")):
        proc = cli(*args)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "q").exists()


def test_python_and_scikit_learn_faces_run_the_pipeline_on_arrays():
    import numpy as np
    from sklearn.datasets import load_digits

    import fewlabels
    from fewlabels.sklearn import SemiSupervisedClassifier

    X, y = load_digits(return_X_y=True)
    X = X.astype("float32")
    y_few = np.full(len(y), -1)
    for c in range(10):
        y_few[np.flatnonzero(y == c)[:5]] = c
    run = fewlabels.pipeline(X[:1200], y_few[:1200], test=(X[1200:], y[1200:]), batch_size=8, uratio=2,
                             stages={s: {"iterations": 10} for s in ("pretrain", "finetune", "distill")})
    assert run.config.algorithm == "distill" and run.pipeline["final_stage"] == "3-distill"
    assert run.pipeline["stages"][0]["config"]["model"] == "mlp"
    clf = SemiSupervisedClassifier(algorithm="pipeline", iterations=10, batch_size=8, uratio=2).fit(X[:1200], y_few[:1200])
    assert clf.algorithm_ == "pipeline" and clf.predict(X[1200:1210]).shape == (10,)


def test_stages_that_cannot_hand_over_are_refused_before_any_work(tmp_path):
    with pytest.raises(FewLabelsError, match="pipeline stage 3-distill: Unknown model 'cnnn'"):
        run_pipeline(COMMON, tmp_path / "p", default_stages({**SMALL, "distill": {"model": "cnnn"}}), progress=False)
    with pytest.raises(FewLabelsError, match=r"starts from stage 1-pretrain's \(the data's default model\) encoder but trains a cnn-wide"):
        run_pipeline(COMMON, tmp_path / "p", default_stages({**SMALL, "finetune": {"model": "cnn-wide"}}), progress=False)
    if not torch.cuda.is_available():  # the first stage's own checks run before anything is written
        with pytest.raises(FewLabelsError, match="device 'cuda' was asked for"):
            run_pipeline({**COMMON, "device": "cuda"}, tmp_path / "p", default_stages(SMALL), progress=False)
    assert not (tmp_path / "p").exists()


def test_a_setting_of_the_first_stage_holds_for_the_later_ones_that_leave_it_unset(tmp_path):
    """run_pipeline hands stage 1's model and image size to stages that set none: no refusal for a mismatch."""
    from fewlabels.train.pipeline import stage_configs

    configs = stage_configs(COMMON, default_stages({"pretrain": {"image_size": 16, "model": "cnn"},
                                                    "finetune": {"init": None}}), tmp_path / "p")
    assert [c.image_size for c in configs] == [16, None, None] and configs[1].init == str(tmp_path / "p" / "1-pretrain")
    with pytest.raises(FewLabelsError, match="3-distill: it learns from stage 2-finetune, whose image size is 16 px, but "
                                             "its own is 12 px"):
        stage_configs(COMMON, default_stages({"pretrain": {"image_size": 16}, "distill": {"image_size": 12}}), tmp_path)
    with pytest.raises(FewLabelsError, match="2-finetune: it starts from stage 1-pretrain's cnn encoder but trains a cnn-wide"):
        stage_configs(COMMON, default_stages({"pretrain": {"model": "cnn"}, "finetune": {"model": "cnn-wide"}}), tmp_path)


def test_resume_works_from_another_directory_and_refuses_a_foreign_stage(finished, tmp_path, monkeypatch):
    out, _ = finished
    copy = tmp_path / "moved"
    shutil.copytree(out, copy)
    (copy / "3-distill" / "results.json").unlink()  # stage 3 must be continued, inside the moved folder
    monkeypatch.chdir(tmp_path)
    record = resume_pipeline("moved", progress=False)
    assert record["final_stage"] == "3-distill" and (copy / "3-distill" / "results.json").is_file()
    assert not (tmp_path / "p").exists()  # nothing written where the original pipeline lived
    config = json.loads((copy / "pipeline.json").read_text())
    config["stages"][1]["config"]["iterations"] = 99  # the manifest no longer describes stage 2's run
    config["stages"][1]["status"] = "pending"
    (copy / "pipeline.json").write_text(json.dumps(config))
    (copy / "2-finetune" / "results.json").unlink()
    with pytest.raises(FewLabelsError, match="holds a run with iterations=8, but this pipeline's stage has iterations=99"):
        resume_pipeline(copy, progress=False)
    config["stages"][1]["config"]["iterations"] = 8
    config["stages"][1]["config"]["options"]["n_sigma"] = 3.0  # any setting, the algorithm's options too
    (copy / "pipeline.json").write_text(json.dumps(config))
    with pytest.raises(FewLabelsError, match="holds a run with options=.*but this pipeline's stage has options="):
        resume_pipeline(copy, progress=False)


def test_overwrite_replaces_every_stage_but_never_a_users_file(finished, tmp_path, capsys):
    out, _ = finished
    copy = tmp_path / "p"
    shutil.copytree(out, copy)
    (copy / "3-distill" / "marker").write_text("a user's file")  # not fewlabels': refused, not deleted (issue 27)
    with pytest.raises(FewLabelsError, match="replaces only what fewlabels wrote .*3-distill/marker is none of those"):
        run_pipeline(COMMON, copy, default_stages({**SMALL, "distill": {"iterations": 2}}), progress=False, overwrite=True)
    assert (copy / "3-distill" / "marker").read_text() == "a user's file"
    (copy / "3-distill" / "marker").unlink()
    capsys.readouterr()
    run_pipeline(COMMON, copy, default_stages({**SMALL, "distill": {"iterations": 2}}), progress=False, overwrite=True)
    assert "--overwrite: replaced what fewlabels wrote in" in capsys.readouterr().out
    assert json.loads((copy / "3-distill" / "results.json").read_text())["iterations"] == 2


def test_the_report_of_a_pipeline_shows_its_stages_side_by_side(finished, tmp_path):
    from fewlabels.cli import main

    out, record = finished
    copy = tmp_path / "p"
    shutil.copytree(out, copy)
    assert main(["report", str(copy), "--quiet"]) == 0
    page = (copy / "report.html").read_text()
    table = page[page.index("<h2>Pipeline stages</h2>"):page.index("</table>", page.index("<h2>Pipeline stages</h2>"))]
    assert table.count("<tr>") == 4  # the header and one row per stage
    for stage in record["stages"]:
        per_class = json.loads((copy / stage["name"] / "results.json").read_text())["test"]["per_class_accuracy"]
        worst = min(per_class, key=per_class.get)
        assert f"<td>{stage['name']}</td><td>{stage['config']['algorithm']}</td>" in table
        assert f"<td>{stage['test_accuracy']:.4f}</td><td>{worst} {per_class[worst]:.4f}</td>" in table


LONG_STAGE_2 = {"pretrain": {"iterations": 6, "batch_size": 8},
                "finetune": {"iterations": 40, "checkpoint_every": 4, "keep_checkpoints": 2, "batch_size": 8, "uratio": 2},
                "distill": {"iterations": 6, "batch_size": 8, "uratio": 2}}


def test_a_pipeline_killed_in_stage_2_resumes_and_ends_as_an_unbroken_one(tmp_path):
    """A real SIGKILL of the command, mid-way through fine-tuning; then ``--resume``."""
    import os
    import signal
    import time

    reference = tmp_path / "reference"
    torch.set_num_threads(1)  # bit-identity holds for one thread count; the command runs on one thread too
    run_pipeline({"dataset": "digits", "labels_per_class": 4}, reference, default_stages(LONG_STAGE_2), progress=False)
    out = tmp_path / "p"
    flags = [f"--stage={stage}.{key}={value}" for stage, settings in LONG_STAGE_2.items() for key, value in settings.items()]
    command = [sys.executable, "-m", "fewlabels", "pipeline", "--dataset", "digits", "--labels-per-class", "4", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*command, "--out", str(out), *flags], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (out / "2-finetune" / "checkpoint-00000012.pt").exists():
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the pipeline ended before it could be killed in stage 2"
    assert not (out / "2-finetune" / "results.json").exists() and not (out / "3-distill").exists()
    stage1 = (out / "1-pretrain" / "last.pt").stat().st_mtime_ns
    done = subprocess.run([*command[:4], "--resume", str(out), "--quiet"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "final model: 3-distill" in done.stdout, done.stderr
    assert (out / "1-pretrain" / "last.pt").stat().st_mtime_ns == stage1  # the finished stage was skipped
    for stage in ("1-pretrain", "2-finetune", "3-distill"):
        assert_same_training_state(reference / stage, out / stage)
