"""fewlabels check-labels: out-of-sample probabilities of the labeled set, by hand, on planted flips, and the CLI."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from fewlabels.errors import FewLabelsError
from fewlabels.select.label_check import check_counts, check_labels, crossfit_probs, doubt, neighbour_probs


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fewlabels", *map(str, args)], capture_output=True, text=True)


def test_doubt_by_hand():
    probs = np.array([[0.2, 0.7, 0.1], [0.6, 0.35, 0.05], [0.45, 0.4, 0.15]])
    d = doubt(probs, np.array([0, 0, 1]))
    assert d["suspected"].tolist() == [1, 1, 0]
    assert d["score"] == pytest.approx([0.5, -0.25, 0.05])
    assert d["flagged"].tolist() == [True, False, False]  # 0.05 is within the 0.1 margin


def test_neighbour_votes_by_hand():
    # three points on a line (cosine: unit vectors at angles 0, 0.1, 1.5 rad); k=1, each votes for its nearest other
    angles = np.array([0.0, 0.1, 1.5])
    f = np.c_[np.cos(angles), np.sin(angles)]
    p = neighbour_probs(f, np.array([0, 1, 1]), 2, k=1, temperature=0.1)
    w = np.exp((np.cos(0.1) - 1.0) / 0.1)  # the nearest neighbour's weight, relative to an identical one
    assert p[0] == pytest.approx(np.array([0.5, 0.5 + w]) / (1 + w))  # row 0's neighbour (row 1) says class 1
    assert p[1, 0] > p[1, 1]


def test_crossfit_never_sees_the_sample_it_scores():
    # two tight clusters; one sample of cluster A labeled B: out of sample, its label gets little probability
    rng = np.random.default_rng(0)
    f = np.concatenate([[1, 0] + 0.05 * rng.standard_normal((10, 2)), [0, 1] + 0.05 * rng.standard_normal((10, 2))])
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    y[0] = 1
    probs, _ = crossfit_probs(f, y, 2, folds=5)
    assert probs[0, 1] < 0.5 and (probs[1:10, 0] > 0.5).all()
    result = check_labels(f, y, 2)
    assert result["order"][0] == 0 and result["flagged"].tolist() == [True] + [False] * 19


def test_fewer_than_two_labels_per_class_is_refused():
    with pytest.raises(FewLabelsError, match="at least 2 labels per class"):
        check_counts(np.array([0, 0, 1]), 2, ["cat", "dog"])
    with pytest.raises(FewLabelsError, match="two classes"):
        check_counts(np.array([0, 0, 0]), 2)


def test_finds_planted_flips_on_digits():
    from fewlabels import data
    from fewlabels.data.noise import add_label_noise
    from fewlabels.select.pool import label_free_features

    train = data.load("digits").train
    rows = data.split(train.y, 25, None, 0, seed=0).labeled
    f = label_free_features(train.x, 0)[rows]
    noisy, flipped = add_label_noise(train.y[rows].numpy(), 0.2, "symmetric", 10, seed=1)
    result = check_labels(f, np.asarray(noisy), 10, seed=0)
    flagged, flipped = result["flagged"], np.asarray(flipped, bool)
    precision = (flagged & flipped).sum() / flagged.sum()
    recall = (flagged & flipped).sum() / flipped.sum()
    assert precision >= 0.7 and recall >= 0.8, (precision, recall)
    top = result["order"][: flipped.sum()]
    assert flipped[top].mean() >= 0.7  # the top of the ranking is mostly planted flips
    assert (result["suspected"][flagged & flipped] == train.y[rows].numpy()[flagged & flipped]).mean() >= 0.8


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("c") / "run"
    train(TrainConfig(dataset="digits", algorithm="supervised", labels_per_class=5, label_noise=0.2, iterations=20,
                      eval_every=20, batch_size=16, out=str(out)), progress=False)
    return out


def test_check_labels_command_ranks_every_labeled_sample(noisy_run, tmp_path):
    from fewlabels import data
    from fewlabels.api import load
    from fewlabels.select.pool import load_pool, run_labels

    out = tmp_path / "labels.csv"
    proc = cli("check-labels", noisy_run, "--top", "5", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 50 and [int(r["rank"]) for r in rows] == list(range(1, 51))
    assert "look wrong" in proc.stdout and len(proc.stdout.splitlines()) == 5 + 3
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    # the labels checked are the run's noisy ones: the planted flips are found among them
    given = run_labels(load(noisy_run).config, load_pool("digits"))
    true = data.load("digits").train.y.numpy()
    assert sum(given[int(r["sample"])] != true[int(r["sample"])] for r in rows) == 10  # 20% of 50
    assert all(r["given"] == str(given[int(r["sample"])]) for r in rows)


def test_check_labels_refuses_one_label_per_class(tmp_path):
    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    run = tmp_path / "run"
    train(TrainConfig(dataset="digits", algorithm="supervised", labels_per_class=1, iterations=2, eval_every=2,
                      batch_size=8, out=str(run)), progress=False)
    out = tmp_path / "labels.csv"
    proc = cli("check-labels", run, "--out", out)
    assert proc.returncode == 2 and "at least 2 labels per class" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists() and not (run / "check-labels.csv").exists()


def test_python_api_check_labels(noisy_run):
    import fewlabels

    rows = fewlabels.check_labels(noisy_run)
    assert len(rows) == 50 and rows[0]["rank"] == 1 and {"given", "suspected", "score", "flagged"} <= set(rows[0])
