"""fewlabels probe and embed: a run's representation scored with a few labels, and written for other tools."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fewlabels.evaluate.probe import fit_predict, probe
from fewlabels.train import TrainConfig, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "simclr"
    torch.set_num_threads(1)
    train(TrainConfig(dataset="digits", algorithm="simclr", labels_per_class=4, iterations=30, eval_every=30,
                      batch_size=16, uratio=4, out=str(out)), progress=False)
    return out


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fewlabels", *map(str, args)], capture_output=True, text=True)


def test_every_method_separates_two_clusters_by_hand():
    train_f = torch.tensor([[1.0, 0.0], [0.9, 0.2], [0.0, 1.0], [0.1, 0.9]])
    train_y = torch.tensor([0, 0, 1, 1])
    test_f = torch.tensor([[0.95, 0.1], [0.05, 1.0]])
    unlabeled = torch.tensor([[0.8, 0.1], [0.2, 0.8]])
    for method in ("knn", "linear", "label-spreading"):
        assert fit_predict(method, train_f, train_y, test_f, 2, unlabeled).tolist() == [0, 1], method


def test_probe_on_the_runs_own_split_matches_its_knn_monitor(run_dir):
    from fewlabels import data
    from fewlabels.api import load

    trained = load(run_dir)
    record = probe(trained.model, data.load("digits"), "knn", 4, None, [0], channels_last=True)
    results = json.loads((run_dir / "results.json").read_text())
    assert record["splits"][0]["accuracy"] == pytest.approx(results["final_knn_acc"])


def test_probe_command_averages_splits_and_writes_json(run_dir, tmp_path):
    proc = cli("probe", run_dir, "--seeds", "3", "--method", "linear", "--json", tmp_path / "p.json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "p.json").read_text())
    assert [s["seed"] for s in record["splits"]] == [0, 1, 2] and record["accuracy_std"] >= 0
    assert f"{record['accuracy_mean']:.4f}" in proc.stdout


@pytest.mark.kernels
def test_embed_writes_what_train_reads(run_dir, tmp_path):
    out = tmp_path / "emb.npz"
    proc = cli("embed", run_dir, "--out", out)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as f:
        assert f["X"].shape == (1347, 64) and f["X_test"].shape == (450, 64) and list(f["classes"])[:2] == ["0", "1"]
    res = train(TrainConfig(dataset=str(out), model="mlp", algorithm="supervised", iterations=20, eval_every=20,
                            out=str(tmp_path / "t")), progress=False)
    assert res["test_accuracy"] > 0.3


@pytest.mark.parametrize("args, words", [
    (["probe", "{run}", "--seeds", "0"], "--seeds must be at least 1"),
    (["probe", "{run}", "--dataset", "fashion-mnist-nope"], "Unknown dataset"),
    (["embed", "{run}", "--out", "x.csv"], "--out must name an .npz file"),
    (["probe", "{missing}"], "does not exist"),
])
def test_bad_input_is_one_sentence(run_dir, tmp_path, args, words):
    args = [a.format(run=run_dir, missing=tmp_path / "nope") for a in args]
    proc = cli(*args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_the_report_of_a_pretraining_run_shows_the_representation(run_dir, tmp_path):
    proc = cli("report", run_dir, "--out", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Representation</h2>" in page and "kNN" in page
