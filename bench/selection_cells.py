"""The cells of bench/selection.py: embeddings, the seed's pool, the strategies (ours and the peers'), and one
function per part (rounds, coverage, labels, fixmatch), each returning one JSON record. See selection.py's docstring.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

POOL = 10000
BUDGETS = (10, 20, 40)
LONG_BUDGETS = (10, 20, 40, 80, 160, 320)  # for the switch point: auto, typiclust, margin, random
LONG = ("auto", "typiclust", "margin", "random")
STRATEGIES = ("auto", "typiclust", "probcover", "coreset", "margin", "entropy", "badge", "random", "balanced")
PEER_STRATEGIES = ("typiclust", "probcover", "coreset", "margin")
NOISE = (0.2, 0.4)
LABELS_PER_CLASS = 25
SSL_RUN = "/work/ssl-runs/fashion-mnist-cnn-simclr-s0"
FIXMATCH = {"iterations": 800, "batch_size": 32, "uratio": 3}  # bench/methods.py's short SSL budget


# ---- embeddings


def embeddings(dataset: str, cache: Path, ssl_run: str) -> dict:
    """Pool embedding, its labels, test embedding and labels (and the encoder's images for views), cached."""
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / f"{dataset}.npz"
    if file.exists():
        with np.load(file) as f:
            return {k: f[k] for k in f.files}
    import torch

    from fewlabels import data

    torch.set_num_threads(1)
    source = data.load(dataset.removesuffix("-pca"))
    if dataset.endswith("-pca"):  # suggest's own cold-start embedding, for comparison with the SimCLR features
        from sklearn.decomposition import PCA

        from fewlabels.select.pool import PCA_DIMS

        flat = source.train.x.flatten(1).float().numpy() / 255.0
        pca = PCA(n_components=PCA_DIMS, random_state=0, svd_solver="randomized").fit(flat)
        out = {"X": pca.transform(flat).astype(np.float32), "y": source.train.y.numpy(),
               "X_test": pca.transform(source.test.x.flatten(1).float().numpy() / 255.0).astype(np.float32),
               "y_test": source.test.y.numpy(), "embedding": np.asarray("PCA-64 of raw pixels")}
    elif dataset == "digits":
        from sklearn.decomposition import PCA

        from fewlabels.select.pool import label_free_features

        flat = source.train.x.flatten(1).float().numpy() / 255.0
        pca = PCA(n_components=64, random_state=0, svd_solver="randomized").fit(flat)
        out = {"X": label_free_features(source.train.x, 0), "y": source.train.y.numpy(),
               "X_test": pca.transform(source.test.x.flatten(1).float().numpy() / 255.0).astype(np.float32),
               "y_test": source.test.y.numpy(), "embedding": np.asarray("PCA-64 of raw pixels")}
    else:
        from fewlabels.api import load
        from fewlabels.select.pool import run_outputs

        run = load(ssl_run)
        out = {"X": run_outputs(run, source.train.x)[0], "y": source.train.y.numpy(),
               "X_test": run_outputs(run, source.test.x)[0], "y_test": source.test.y.numpy(),
               "embedding": np.asarray(f"SimCLR backbone features ({ssl_run})")}
    np.savez(file, **out)
    return out


def pool_of(emb: dict, dataset: str, seed: int) -> np.ndarray:
    n = len(emb["y"])
    if dataset == "digits" or n <= POOL:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, POOL, replace=False))


# ---- downstream learners


def evaluate(f: np.ndarray, labeled: np.ndarray, y: np.ndarray, f_test: np.ndarray, y_test: np.ndarray, k: int) -> dict:
    import torch
    from sklearn.semi_supervised import LabelSpreading

    from fewlabels.evaluate.probe import linear_probe
    from fewlabels.select.distances import normalize

    out = {}
    if len(np.unique(y[labeled])) >= 2:
        p = linear_probe(torch.as_tensor(f[labeled]), torch.as_tensor(y[labeled]), torch.as_tensor(f_test), k)
        out["linear"] = float((p.argmax(1) == y_test).mean())
    else:
        out["linear"] = float((y_test == y[labeled][0]).mean())
    target = np.full(len(f), -1)
    target[labeled] = y[labeled]
    ls = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(normalize(f), target)
    out["spreading"] = float((ls.predict(normalize(f_test)) == y_test).mean())
    return out


def probe_probs(f: np.ndarray, labeled: np.ndarray, y: np.ndarray, k: int) -> np.ndarray | None:
    import torch

    from fewlabels.evaluate.probe import linear_probe

    if len(labeled) == 0 or len(np.unique(y[labeled])) < 2:
        return None
    return linear_probe(torch.as_tensor(f[labeled]), torch.as_tensor(y[labeled]), torch.as_tensor(f), k)


# ---- parts


def pick_ours(strategy: str, f, labeled, add, y, seed, k):
    from fewlabels.select.strategies import NEEDS_PROBS, select

    probs = probe_probs(f, labeled, y, k)
    if strategy in NEEDS_PROBS and probs is None:
        strategy = "random"
    given = np.full(len(f), -1)
    given[labeled] = y[labeled]
    ranked, chosen = select(f, labeled, add, strategy, seed, probs, k, given, cover=strategy != "random")
    return ranked.index, chosen


def pick_peer(strategy: str, f, labeled, add, y, seed, k):
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import CoreSet, ProbCover, TypiClust, UncertaintySampling
    from skactiveml.utils import MISSING_LABEL
    from sklearn.linear_model import LogisticRegression

    from fewlabels.select.distances import normalize

    x = normalize(f).astype(np.float64)
    target = np.full(len(f), MISSING_LABEL)
    target[labeled] = y[labeled]
    if strategy == "margin":
        if len(np.unique(y[labeled])) < 2:
            return np.random.default_rng(seed).permutation(np.setdiff1d(np.arange(len(f)), labeled))[:add], "random"
        clf = SklearnClassifier(LogisticRegression(C=10.0, max_iter=2000), classes=np.arange(k), random_state=seed)
        qs = UncertaintySampling(method="margin_sampling", random_state=seed)
        return np.asarray(qs.query(x, target, clf=clf, batch_size=add)), strategy
    if strategy == "typiclust":
        qs = TypiClust(random_state=seed, k=20)  # the paper's (and fewlabels') 20 neighbours for typicality
    elif strategy == "probcover":
        qs = ProbCover(n_classes=k, random_state=seed)
    else:
        qs = CoreSet(random_state=seed)
    return np.asarray(qs.query(x, target, batch_size=add)), strategy


def rounds_cell(dataset: str, strategy: str, seed: int, emb: dict, peer: bool = False) -> dict:
    from fewlabels import data

    idx = pool_of(emb, dataset, seed)
    f, y = emb["X"][idx], emb["y"][idx]
    k = int(emb["y"].max()) + 1
    budgets = LONG_BUDGETS if strategy in LONG and not peer else BUDGETS
    labeled = np.empty(0, dtype=np.int64)
    out = []
    for b in budgets:
        t0 = time.perf_counter()
        if strategy == "balanced":
            labeled, chosen = data.split(y, None, b, 0, seed).labeled, "balanced"
        else:
            picks, chosen = (pick_peer if peer else pick_ours)(strategy, f, labeled, b - len(labeled), y, seed, k)
            labeled = np.concatenate([labeled, picks.astype(np.int64)])
        select_s = time.perf_counter() - t0
        assert len(np.unique(labeled)) == b, (strategy, b, len(np.unique(labeled)))
        row = {"labels": b, "chosen_by": chosen, "select_s": select_s,
               "classes_covered": int(len(np.unique(y[labeled])))}
        row.update(evaluate(f, labeled, y, emb["X_test"], emb["y_test"], k))
        out.append(row)
        print(f"  {dataset} {'peer ' if peer else ''}{strategy} s{seed} {b}: {row}", flush=True)
    return {"rounds": out}


def coverage_cell(dataset: str, strategy: str, seed: int, emb: dict) -> dict:
    """Classes covered after the 10- and 20-label rounds (selection only, no learner), for 10 seeds."""
    from fewlabels import data

    idx = pool_of(emb, dataset, seed)
    f, y = emb["X"][idx], emb["y"][idx]
    k = int(emb["y"].max()) + 1
    labeled = np.empty(0, dtype=np.int64)
    out = {}
    for b in (10, 20):
        if strategy == "balanced":
            labeled = data.split(y, None, b, 0, seed).labeled
        else:
            picks, _ = pick_ours(strategy, f, labeled, b - len(labeled), y, seed, k)
            labeled = np.concatenate([labeled, picks])
        out[str(b)] = int(len(np.unique(y[labeled])))
    return {"covered": out}


def prf(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "flagged": int(flagged.sum())}


def label_views(dataset: str, rows: np.ndarray, seed: int, ssl_run: str) -> list[np.ndarray] | None:
    if dataset == "digits":
        return None
    import torch

    from fewlabels import data
    from fewlabels.api import load
    from fewlabels.select.suggestion import augmented_features

    run = load(ssl_run)
    x = data.load(dataset).train.x[torch.as_tensor(rows)]
    return augmented_features(run, x, 4, seed)


def labels_cell(dataset: str, noise: float, seed: int, emb: dict, ssl_run: str, peer: bool = False) -> dict:
    from fewlabels import data
    from fewlabels.data.noise import add_label_noise
    from fewlabels.select.label_check import check_labels

    idx = pool_of(emb, dataset, seed)
    y_pool = emb["y"][idx]
    k = int(emb["y"].max()) + 1
    chosen = data.split(y_pool, LABELS_PER_CLASS, None, 0, seed).labeled
    rows = idx[chosen]
    y = emb["y"][rows]
    noisy, flipped = add_label_noise(y, noise, "symmetric", k, seed=seed)
    noisy, flipped = np.asarray(noisy), np.asarray(flipped).astype(bool)
    t0 = time.perf_counter()
    result = check_labels(emb["X"][rows], noisy, k, seed, label_views(dataset, rows, seed, ssl_run))
    ours_s = time.perf_counter() - t0
    out = {"fewlabels": {**prf(result["flagged"], flipped), "seconds": ours_s}}
    if peer:
        from cleanlab.filter import find_label_issues

        for name, probs in (("cleanlab", result["probs"]), ("cleanlab_crossfit_only", result["crossfit"])):
            t0 = time.perf_counter()
            issues = find_label_issues(noisy, probs)
            out[name] = {**prf(np.asarray(issues, dtype=bool), flipped), "seconds": time.perf_counter() - t0}
    print(f"  {dataset} noise {noise} s{seed}: {out}", flush=True)
    return out


def fixmatch_cell(dataset: str, strategy: str, seed: int, emb: dict) -> dict:
    """FixMatch (from scratch, the short budget) on the seed's pool with the 20 labels ``strategy`` picked in two rounds."""
    import torch

    from fewlabels import data
    from fewlabels.api import fit
    from fewlabels.data import Dataset, DataSource

    idx = pool_of(emb, dataset, seed)
    f, y = emb["X"][idx], emb["y"][idx]
    labeled = np.empty(0, dtype=np.int64)
    for b in (10, 20):  # the same rounds as the rounds part, so the same picks
        picks, _ = pick_ours(strategy, f, labeled, b - len(labeled), y, seed, 10)
        labeled = np.concatenate([labeled, picks.astype(np.int64)])
    source = data.load(dataset)
    given = torch.full((len(idx),), -1, dtype=torch.int64)
    given[torch.as_tensor(labeled)] = torch.as_tensor(y[labeled])
    pool = DataSource(Dataset(source.train.x[torch.as_tensor(idx)], given, source.train.classes, dataset), source.test,
                      hflip=source.hflip)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = fit(pool, algorithm="fixmatch", seed=seed, eval_every=FIXMATCH["iterations"], **FIXMATCH)
    return {"labels": 20, "classes_covered": int(len(np.unique(y[labeled]))), "train_s": time.perf_counter() - t0,
            "test_accuracy": float(run.results["test_accuracy"]), **FIXMATCH}
