"""Exact resume: a run killed at arbitrary points and resumed ends bit-identical to an unbroken one."""

import csv
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, load_checkpoint, resume, train
from fewlabels.utils import io as fio

SETTINGS = dict(dataset="digits", labels_per_class=4, iterations=60, eval_every=20, checkpoint_every=3,
                batch_size=16, uratio=2, seed=5, keep_checkpoints=2, augment="hand")
FLAGS = ["--dataset", "digits", "--labels-per-class", "4", "--iterations", "60", "--eval-every", "20",
         "--checkpoint-every", "3", "--batch-size", "16", "--uratio", "2", "--seed", "5", "--keep-checkpoints", "2",
         "--augment", "hand"]
TIMING = {"train_time_s"}


def final_state(run):
    ckpt = torch.load(run / "last.pt", weights_only=True)
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader((run / "metrics.csv").open())]
    return ckpt, rows


def assert_identical(a, b):
    (ca, ra), (cb, rb) = final_state(a), final_state(b)
    assert ca["step"] == cb["step"] == SETTINGS["iterations"]
    for part in ("model",):
        for k in ca[part]:
            assert torch.equal(ca[part][k], cb[part][k]), k
    for k in ca["ema"]["module"]:
        assert torch.equal(ca["ema"]["module"][k], cb["ema"]["module"][k]), k
    assert ra == rb


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The unbroken run. Bit-identity holds for one thread count: every run here uses one thread."""
    out = tmp_path_factory.mktemp("ref") / "run"
    torch.set_num_threads(1)
    train(TrainConfig(**SETTINGS, out=str(out)), progress=False)
    return out


def cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "fewlabels.cli", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_at_random_points_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(1234)
    proc = cli(*FLAGS, "--out", str(out), "--quiet")
    kills = 0
    while kills < 3:
        # wait for a random checkpoint to appear (or a write in flight), then kill without warning
        target = rng.randrange(3, 57)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            steps = [int(p.stem.split("-")[1]) for p in out.glob("checkpoint-*.pt")] if out.exists() else []
            in_flight = out.exists() and any(out.glob(".*.tmp"))
            if (steps and max(steps) >= target) or (in_flight and rng.random() < 0.5):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
        if proc.returncode == 0:  # finished before the kill landed
            break
        kills += 1
        if (out / "last.pt").exists():
            proc = cli("--resume", str(out), "--quiet")
        else:  # killed before the first checkpoint: nothing to resume, start again
            proc = cli(*FLAGS, "--out", str(out), "--quiet", "--overwrite")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills >= 1
    assert_identical(reference, out)
    assert not list(out.glob(".*.tmp"))
    assert len(list(out.glob("checkpoint-*.pt"))) <= 2


def test_crash_during_checkpoint_write_keeps_the_previous_one(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = fio.atomic_torch_save
    calls = {"n": 0}

    def dying_save(path, obj):
        calls["n"] += 1
        if calls["n"] == 7:  # the 7th checkpoint (step 21) dies half way: temp file written, never renamed
            tmp = path.parent / f".{path.name}.crash.tmp"
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt  # stands in for the process dying
        real_save(path, obj)

    monkeypatch.setattr("fewlabels.storage.run_folder.atomic_torch_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**SETTINGS, out=str(out)), progress=False)
    monkeypatch.setattr("fewlabels.storage.run_folder.atomic_torch_save", real_save)
    assert load_checkpoint(out)["step"] == 18  # the last complete checkpoint survived
    resume(out, progress=False)
    assert_identical(reference, out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_finishes_the_step_saves_and_says_how_to_resume(tmp_path, sig):
    out = tmp_path / "run"
    flags = [f if f != "60" else "100000" for f in FLAGS]  # long enough to be stopped
    # the folder appears with the first checkpoint (step 7); the stop lands a second later
    proc = cli(*flags, "--out", str(out), "--quiet", "--checkpoint-every", "7", "--eval-every", "100000")
    deadline = time.time() + 120
    while not (out / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    assert f"fewlabels train --resume {out}" in err and "Traceback" not in err
    step = load_checkpoint(out)["step"]
    assert 7 < step < 100000 and f"after step {step}," in err  # the checkpoint is the stopped step's


def test_nan_loss_stops_with_name_and_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from fewlabels.algorithms.fixmatch import FixMatch
    from fewlabels.train import TrainingError

    real = FixMatch.losses

    def poisoned(self, model, batch, step):
        out = real(self, model, batch, step)
        if step == 10:
            out["unsup"] = out["unsup"] * float("nan")
        return out

    monkeypatch.setattr(FixMatch, "losses", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        train(TrainConfig(**SETTINGS, out=str(out)), progress=False)
    assert "Loss 'unsup' became nan at step 10" in str(err.value)
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 9
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_resume_refuses_foreign_or_broken_folders(tmp_path, reference):
    with pytest.raises(FewLabelsError, match="holds no checkpoint"):
        resume(tmp_path, progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FewLabelsError, match="cannot be read as a fewlabels checkpoint"):
        resume(bad, progress=False)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "last.pt").write_bytes((reference / "last.pt").read_bytes())
    (mixed / "config.yaml").write_text((reference / "config.yaml").read_text().replace("model: cnn", "model: cnn-wide"))
    with pytest.raises(FewLabelsError, match="mixes two runs"):
        resume(mixed, progress=False)
    old = tmp_path / "old"
    old.mkdir()
    ckpt = torch.load(reference / "last.pt", weights_only=True)
    ckpt["format"] = 0
    torch.save(ckpt, old / "last.pt")
    with pytest.raises(FewLabelsError, match="checkpoint format 0"):
        resume(old, progress=False)


def test_resume_with_other_flags_is_refused(tmp_path):
    from fewlabels.cli import main

    assert main(["train", "--resume", str(tmp_path), "--lr", "0.1"]) == 2


def test_completed_run_resumes_to_the_same_results(reference, tmp_path):
    before = (reference / "results.json").read_text()
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in reference.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    resume(copy, progress=False)
    assert os.path.exists(copy / "results.json")
    import json

    a, b = json.loads(before), json.loads((copy / "results.json").read_text())
    assert a["test"] == b["test"]


def test_resume_refuses_a_checkpoint_that_no_longer_fits_the_data_or_the_model(tmp_path, reference):
    """The refusals of ``restored_trainer``, which resume and the benches share: one sentence, nothing trained."""
    def copy_with(name, change):
        folder = tmp_path / name
        folder.mkdir()
        ckpt = torch.load(reference / "last.pt", weights_only=True)
        change(ckpt)
        torch.save(ckpt, folder / "last.pt")
        (folder / "config.yaml").write_text((reference / "config.yaml").read_text())
        return folder

    other_classes = copy_with("classes", lambda c: c.update(classes=[f"c{i}" for i in range(len(c["classes"]))]))
    with pytest.raises(FewLabelsError, match="was trained on data with classes .* resume with the same data"):
        resume(other_classes, progress=False)
    weights = torch.load(reference / "last.pt", weights_only=True)["model"]
    conv = next(k for k, v in weights.items() if k.endswith("weight") and v.dim() == 4)
    other_model = copy_with("model", lambda c: c["model"].update({conv: torch.zeros(3, 1, 5, 5)}))  # another width
    with pytest.raises(FewLabelsError, match="does not fit model 'cnn'"):
        resume(other_model, progress=False)
    assert not (other_classes / "results.json").exists() and not (other_model / "results.json").exists()
