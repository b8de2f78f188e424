"""fewlabels suggest: each strategy on hand-made embeddings where the right picks are known, and the CLI."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from fewlabels.errors import FewLabelsError
from fewlabels.select import representative as rep
from fewlabels.select import strategies as st
from fewlabels.select import uncertainty as unc
from fewlabels.select.strategies import select


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fewlabels", *map(str, args)], capture_output=True, text=True)


def blobs(centres, per=30, spread=0.05, seed=0):
    """Gaussian blobs around ``centres``; returns features, blob index, and the row nearest each centre."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64)
    x = np.concatenate([c + spread * rng.standard_normal((per, len(c))) for c in centres]).astype(np.float32)
    blob = np.repeat(np.arange(len(centres)), per)
    nearest = [int(np.argmin(((x - c) ** 2).sum(1))) for c in centres]
    return x, blob, nearest


CORNERS = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]]  # four directions: distinct points of the sphere


# ---- the math, by hand


def test_typicality_is_inverse_mean_distance_to_nearest_neighbours():
    f = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    t = rep.typicality(f, k=1)
    assert t == pytest.approx([1.0, 1.0, 1 / 2.0], rel=1e-5)
    t2 = rep.typicality(f, k=2)
    assert t2 == pytest.approx([1 / 2.0, 1 / 1.5, 1 / 2.5], rel=1e-5)


def test_purity_radius_is_the_quantile_of_distances_to_another_pseudo_class():
    f = np.array([[0.0], [1.0], [10.0], [12.0]], dtype=np.float32)
    d = rep.other_class_distance(f, np.array([0, 0, 1, 1]))
    assert d == pytest.approx([10.0, 9.0, 9.0, 11.0])


def test_probcover_radius_has_a_floor_at_the_kth_neighbour_distance():
    f = np.array([[0.0], [1.0], [3.0], [6.0]], dtype=np.float32)
    # one class, 4 rows: K = 2; 2nd-nearest other row: 3, 2, 3, 5 -> median 3
    assert rep.neighbour_radius(f, 1, seed=0) == pytest.approx(3.0)
    # one even cloud split into two pseudo-classes: 5% of the points sit within ~0.025 of the split, so the pure
    # radius is tiny; the floor is the 50th neighbour's distance (25 points either side at spacing 0.005: 0.125)
    line = np.linspace(0, 1, 201, dtype=np.float32)[:, None]
    assert rep.purity_radius(line, 2, 0) < 0.05
    assert rep.probcover_radius(line, 2, 0) == rep.neighbour_radius(line, 2, 0) == pytest.approx(0.125, abs=0.01)


def test_margin_entropy_and_badge_gradient_by_hand():
    probs = np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    cand = np.arange(3)
    m = unc.margin(probs, cand, 3)
    assert m.index.tolist() == [2, 0, 1] and m.score == pytest.approx([0.01, 0.1, 0.85])
    e = unc.entropy(probs, cand, 3)
    assert e.index[0] == 2 and e.score[0] == pytest.approx(-(0.34 * np.log(0.34) + 2 * 0.33 * np.log(0.33)))
    g = unc.gradient_embedding(np.array([[0.7, 0.3]]), np.array([[2.0, 1.0]], dtype=np.float32))
    assert g.ravel() == pytest.approx([-0.6, -0.3, 0.6, 0.3])  # (p - onehot(0)) outer h


def test_kmeanspp_starts_at_the_largest_norm_and_goes_far():
    g = np.array([[0.1, 0.0], [0.0, 0.2], [5.0, 5.0], [5.1, 5.0], [-3.0, 0.0]], dtype=np.float32)
    picks, _ = unc.kmeanspp(g, 2, seed=0)
    assert picks[0] in (2, 3) and picks[1] not in (2, 3)


# ---- strategies on hand-made embeddings


def grids():
    """Four 5x5 grids in the planes tangent to four directions of the sphere; row 12 of each is its centre."""
    rows = []
    for d in np.eye(4)[:, :4]:
        u, v = np.roll(d, 1), np.roll(d, 2)
        rows += [d + 0.02 * (a * u + b * v) for a in range(-2, 3) for b in range(-2, 3)]
    return np.asarray(rows, dtype=np.float32), [12, 37, 62, 87]


def test_typiclust_picks_the_cluster_centres():
    x, centres = grids()
    ranked, chosen = select(x, np.array([], dtype=int), 4, "typiclust", seed=0)
    assert chosen == "typiclust"
    assert sorted(ranked.index.tolist()) == centres


def test_typiclust_skips_clusters_that_hold_labels():
    x, blob, nearest = blobs(CORNERS, per=40)
    labeled = np.array([nearest[0], nearest[1]])
    ranked, _ = select(x, labeled, 2, "typiclust", seed=0)
    assert sorted(blob[ranked.index].tolist()) == [2, 3]


def test_coreset_picks_the_farthest_points():
    # a tight blob with the labels, and three outliers at growing distances: farthest first
    rng = np.random.default_rng(0)
    x = np.concatenate([[1, 0, 0] + 0.01 * rng.standard_normal((20, 3)), [[0, 1, 0], [-1, 0.1, 0], [0.7, 0.7, 0]]])
    ranked, _ = select(x, np.arange(5), 2, "coreset", seed=0)
    assert ranked.index.tolist() == [21, 20]


def test_margin_picks_the_boundary_points():
    x = np.linspace(-1, 1, 21)[:, None].astype(np.float32)
    p1 = 1 / (1 + np.exp(-8 * x[:, 0]))
    probs = np.stack([1 - p1, p1], 1)
    ranked, _ = select(np.c_[x, np.ones_like(x)], np.array([0, 20]), 3, "margin", 0, probs, 2, cover=False)
    assert sorted(ranked.index.tolist()) == [9, 10, 11]
    ranked, _ = select(np.c_[x, np.ones_like(x)], np.array([0, 20]), 1, "entropy", 0, probs, 2)
    assert ranked.index.tolist() == [10]


def test_probcover_covers_each_dense_region_once():
    x, blob, _ = blobs(CORNERS, per=30, spread=0.02)
    ranked, _ = select(x, np.array([], dtype=int), 4, "probcover", seed=0, num_classes=4)
    assert sorted(blob[ranked.index].tolist()) == [0, 1, 2, 3]
    delta = float(ranked.reason[0].rsplit(" ", 1)[1])
    assert 1.2 < delta < 2 ** 0.5  # just under the distance between regions: 95% of the balls stay pure


def test_badge_starts_at_the_most_uncertain_and_mostly_picks_uncertain_samples():
    x, blob, _ = blobs(CORNERS, per=10)
    probs = np.eye(4)[blob]  # sure: a zero gradient embedding
    probs[[3, 23, 33]] = [0.4, 0.2, 0.2, 0.2]  # one unsure sample per blob: |p - onehot| = 0.69
    probs[13] = 0.25  # the most unsure of all: |p - onehot| = 0.87
    unsure = {3, 13, 23, 33}
    hits = 0
    for seed in range(10):
        ranked, _ = select(x, np.array([0, 10, 20, 30]), 4, "badge", seed, probs, 4, cover=False)
        assert ranked.index[0] == 13
        hits += len(unsure & set(ranked.index.tolist()))
    assert hits >= 25  # of 40 picks; 36 sure samples against 4 unsure ones


def test_class_coverage_before_second_picks():
    # margin prefers class 0's boundary, but class 2 and 3 have no label yet: they come first
    x, blob, _ = blobs(CORNERS, per=10)
    probs = np.full((40, 4), 0.02)
    probs[np.arange(40), blob] = 0.94
    probs[:10, 0], probs[:10, 1] = 0.5, 0.46  # class 0 all near the 0/1 boundary
    given = np.full(40, -1)
    given[[0, 10]] = [0, 1]
    ranked, _ = select(x, np.array([0, 10]), 3, "margin", 0, probs, 4, given)
    picked_classes = probs[ranked.index].argmax(1).tolist()
    assert set(picked_classes[:2]) == {2, 3} and picked_classes[2] == 0
    ranked, _ = select(x, np.array([0, 10]), 3, "margin", 0, probs, 4, given, cover=False)
    assert probs[ranked.index].argmax(1).tolist() == [0, 0, 0]


def test_typicality_picks_are_not_balanced_over_a_model_that_knows_fewer_classes():
    # blobs 0 and 1 are labeled; the model (trained on those two) calls blobs 2 and 3 class 0. TypiClust's
    # picks go to the two unlabeled blobs: balancing over the model's two names would trade blob 3 for blob 1
    x, blob, _ = blobs(CORNERS, per=10)
    probs = np.zeros((40, 4))
    probs[:, 0] = 0.9
    probs[:, 1] = 0.1
    probs[10:20] = [0.1, 0.9, 0.0, 0.0]
    given = np.full(40, -1)
    given[[0, 10]] = [0, 1]
    ranked, _ = select(x, np.array([0, 10]), 2, "typiclust", 0, probs, 4, given)
    assert sorted(blob[ranked.index].tolist()) == [2, 3]


def test_every_strategy_is_deterministic_for_a_seed_and_random_varies():
    x, blob, _ = blobs(CORNERS + [[0, -1, 0]], per=20)
    probs = np.eye(5)[blob] * 0.6 + 0.08
    for s in st.STRATEGIES:
        a, _ = select(x, np.array([0, 20]), 5, s, 3, probs, 5)
        b, _ = select(x, np.array([0, 20]), 5, s, 3, probs, 5)
        assert a.index.tolist() == b.index.tolist(), s
        assert len(set(a.index.tolist())) == 5 and not {0, 20} & set(a.index.tolist()), s
    r1, _ = select(x, [], 5, "random", 1)
    r2, _ = select(x, [], 5, "random", 2)
    assert r1.index.tolist() != r2.index.tolist()


def test_auto_switches_from_typicality_to_margin():
    assert st.resolve_auto(0, 10, False) == "typiclust"
    assert st.resolve_auto(99, 10, True) == "typiclust"
    assert st.resolve_auto(100, 10, True) == "margin"
    assert st.resolve_auto(500, 10, False) == "typiclust"  # no model, no uncertainty


def test_bad_budgets_and_strategies_are_one_sentence():
    x = np.eye(4, dtype=np.float32)
    for budget in (0, 4):
        with pytest.raises(FewLabelsError, match="budget"):
            select(x, [0], budget, "random")
    with pytest.raises(FewLabelsError, match="Unknown strategy"):
        select(x, [], 1, "bald")
    with pytest.raises(FewLabelsError, match="needs a model"):
        select(x, [], 1, "margin")


# ---- the command


def test_cold_start_on_digits_with_zero_labels_covers_most_classes(tmp_path):
    out = tmp_path / "picks.csv"
    proc = cli("suggest", "--dataset", "digits", "--budget", "10", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10 and rows[0]["strategy"] == "typiclust" and "cluster" in rows[0]["reason"]
    from fewlabels import data

    y = data.load("digits").train.y.numpy()
    assert len(set(y[[int(r["sample"]) for r in rows]])) >= 8
    again = tmp_path / "again.csv"
    cli("suggest", "--dataset", "digits", "--budget", "10", "--out", again)
    assert again.read_text() == out.read_text()


def make_folder(root, n_per=6, unlabeled=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("light", 210)):
        (root / name).mkdir(parents=True)
        for i in range(n_per):
            Image.fromarray(np.full((8, 8), value + rng.integers(-10, 10), dtype=np.uint8)).save(root / name / f"{name}{i}.png")
    (root / "unlabeled").mkdir()
    for i in range(unlabeled):
        value = 40 if i % 2 else 210
        Image.fromarray(np.full((8, 8), value + rng.integers(-10, 10), dtype=np.uint8)).save(root / "unlabeled" / f"u{i}.png")


def test_folder_round_copy_sort_merge(tmp_path):
    data_dir = tmp_path / "data"
    make_folder(data_dir)
    out, sort = tmp_path / "picks.csv", tmp_path / "to-sort"
    proc = cli("suggest", "--dataset", data_dir, "--budget", "2", "--strategy", "margin", "--out", out, "--copy-to", sort)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert all(r["sample"].startswith(str(data_dir / "unlabeled")) for r in rows)
    assert {r["predicted"] for r in rows} == {"dark", "light"}  # one per class first
    copies = sorted(p.name for p in sort.iterdir() if p.is_file() and not p.name.startswith("."))  # .: the manifest
    assert len(copies) == 2 and (sort / "dark").is_dir() and (sort / "light").is_dir()
    for r in rows:
        name = r["sample"].rsplit("/", 1)[1]
        (sort / name).rename(sort / r["predicted"] / name)
    proc = cli("merge-labels", "--dataset", data_dir, "--sorted", sort)
    assert proc.returncode == 0, proc.stderr
    assert len(list((data_dir / "unlabeled").iterdir())) == 10 and len(list((data_dir / "dark").iterdir())) == 7


def test_npz_round_merges_filled_labels(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(4, 1, (20, 5))]).astype(np.float32)
    y = np.full(40, -1)
    y[[0, 1, 20, 21]] = [0, 0, 1, 1]
    np.savez(tmp_path / "d.npz", X=X, y=y, classes=np.array(["a", "b"]))
    out = tmp_path / "picks.csv"
    proc = cli("suggest", "--dataset", tmp_path / "d.npz", "--budget", "3", "--strategy", "coreset", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    for r in rows:
        r["label"] = "a" if int(r["sample"]) < 20 else "1"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    proc = cli("merge-labels", "--dataset", tmp_path / "d.npz", "--labels", out, "--out", tmp_path / "d2.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "d2.npz") as f:
        merged = f["y"]
    for r in rows:
        assert merged[int(r["sample"])] == (0 if int(r["sample"]) < 20 else 1)
    assert (merged >= 0).sum() == 7


def assert_suggest_refuses(args, tmp_path, match):
    out = tmp_path / "picks.csv"
    proc = cli("suggest", *args, "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and match in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    return proc


def test_suggest_bad_input_is_one_sentence_exit_2_nothing_written(tmp_path):
    assert_suggest_refuses(["--dataset", "digits", "--budget", "0"], tmp_path, "at least 1")
    assert_suggest_refuses(["--dataset", "digits", "--budget", "5000"], tmp_path, "larger than the 1347 unlabeled")
    assert_suggest_refuses(["--dataset", "digits", "--budget", "5", "--strategy", "bald"], tmp_path, "Unknown strategy")
    data_dir = tmp_path / "data"
    make_folder(data_dir)
    inside = data_dir / "sort"
    assert_suggest_refuses(["--dataset", data_dir, "--budget", "2", "--copy-to", inside], tmp_path, "inside the dataset")
    assert not inside.exists()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if not os.access(locked, os.W_OK) or os.geteuid() != 0:
            assert_suggest_refuses(["--dataset", data_dir, "--budget", "2", "--copy-to", locked / "sort"], tmp_path, "not writable")
    finally:
        locked.chmod(0o700)


def test_suggest_refuses_a_run_trained_on_other_data(tmp_path):
    import torch

    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    run = tmp_path / "run"
    X = np.random.default_rng(0).normal(size=(60, 64)).astype(np.float32)
    y = np.repeat(np.arange(10), 6)
    np.savez(tmp_path / "other.npz", X=X, y=y)
    train(TrainConfig(dataset=str(tmp_path / "other.npz"), algorithm="supervised", model="mlp", labels_per_class=2,
                      iterations=2, eval_every=2, batch_size=8, out=str(run)), progress=False)
    assert_suggest_refuses(["--dataset", "digits", "--budget", "5", "--from", run], tmp_path, "was trained on")


def test_python_api_suggest_matches_the_command(tmp_path):
    import fewlabels

    rows = fewlabels.suggest("digits", 5, strategy="coreset", seed=0)
    out = tmp_path / "p.csv"
    assert cli("suggest", "--dataset", "digits", "--budget", "5", "--strategy", "coreset", "--out", out).returncode == 0
    assert [r["sample"] for r in rows] == [r["sample"] for r in csv.DictReader(out.open())]


def test_from_a_run_uses_its_split_features_and_predictions(tmp_path):
    import torch

    from fewlabels.api import load
    from fewlabels.select.pool import load_pool, run_labels
    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    run = tmp_path / "run"
    train(TrainConfig(dataset="digits", algorithm="supervised", labels_per_class=3, iterations=10, eval_every=10,
                      batch_size=16, out=str(run)), progress=False)
    out = tmp_path / "picks.csv"
    proc = cli("suggest", "--dataset", "digits", "--from", run, "--budget", "12", "--strategy", "margin", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    given = run_labels(load(run).config, load_pool("digits"))
    picked = [int(r["sample"]) for r in rows]
    assert len(set(picked)) == 12 and all(given[i] < 0 for i in picked)  # never a sample the run had labeled
    predicted = [r["predicted"] for r in rows]
    assert all(predicted) and len(set(predicted[:len(set(predicted))])) == len(set(predicted))  # one per class first
    assert "backbone features" in proc.stdout


def test_cold_start_on_a_folder_with_only_unlabeled_images(tmp_path):
    from PIL import Image

    data_dir = tmp_path / "data"
    (data_dir / "unlabeled").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(16):
        value = 40 if i % 2 else 210
        Image.fromarray(np.full((8, 8), value + rng.integers(-10, 10), dtype=np.uint8)).save(data_dir / "unlabeled" / f"u{i}.png")
    out, sort = tmp_path / "picks.csv", tmp_path / "sort"
    proc = cli("suggest", "--dataset", data_dir, "--budget", "2", "--out", out, "--copy-to", sort, "--strategy", "typiclust")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    values = [int(r["sample"].rsplit("u", 1)[1].split(".")[0]) % 2 for r in rows]
    assert sorted(values) == [0, 1]  # one dark, one light: the two clusters
    assert sorted(p.name for p in sort.iterdir() if not p.name.startswith(".")) == sorted(r["copy"] for r in rows)
    assert [r["copy"] for r in rows] == [r["sample"].rsplit("/", 1)[1] for r in rows]  # a name no other pick has
    (sort / "dark").mkdir()
    (sort / "light").mkdir()
    for r in rows:
        name = r["sample"].rsplit("/", 1)[1]
        (sort / name).rename(sort / ("dark" if int(name[1:].split(".")[0]) % 2 else "light") / name)
    assert cli("merge-labels", "--dataset", data_dir, "--sorted", sort).returncode == 0
    assert len(list((data_dir / "dark").iterdir())) == 1 and len(list((data_dir / "unlabeled").iterdir())) == 14
