"""Which samples to label and which labels to doubt: simulated labeling rounds and planted label noise.

    python bench/selection.py --parts rounds,coverage,labels      # fewlabels' strategies and check-labels
    /work/peers-venv/bin/python bench/selection.py --parts peers   # scikit-activeml and cleanlab, same inputs
    python bench/selection.py --collect && python bench/report.py

Embeddings (computed once, cached outside the repository with --cache):
- Fashion-MNIST: the backbone features of a SimCLR run (``cnn``, 10 CPU-minutes of pretraining,
  --ssl-run) on the 60k training images and the 10k test images. Each seed draws its own pool of
  ``POOL`` training images (the selection is made in it); test images are never selected on.
- digits: a PCA of the raw pixels to 64 dimensions fitted on the 1,347 training images (label-free;
  no self-supervised run), the whole training set is the pool; 450 test images.

Rounds: from zero labels, a strategy picks 10, then 10 more (20), then 20 more (40), ... (the
``BUDGETS`` cumulative totals); an oracle labels the picks with their true class. Between rounds
the model whose uncertainty margin/entropy/badge read is a linear probe (logistic regression, C=10,
on the L2-normalized embedding) of the labels so far; with zero labels those strategies (which need
a model) take their first round at random, as active learning does. "balanced" is today's
class-balanced random split (``fewlabels.data.split`` with num_labels=B, seed). After each round two
cheap downstream learners score the labels on the test set: the linear probe, and label spreading
(scikit-learn, kNN kernel, k=10) over the pool's embedding: a graph-based semi-supervised learner
on frozen self-supervised features, standing in for FixMatch (which does not fit this CPU for
every cell). Classes covered = distinct true classes among the labels.

Label checking: 25 labels per class drawn class-balanced from the pool, then symmetric noise
(exactly 20% or 40% flipped, uniformly to another class, ``fewlabels.data.noise``); fewlabels'
check_labels flags samples (cross-fitted logistic regression + leave-one-out neighbours, plus 4 weakly
augmented views through the SimCLR encoder on Fashion-MNIST); cleanlab's ``find_label_issues`` gets the
same mean probabilities, and also the cross-fitted ones alone. Precision, recall, F1 against the flips.

One JSON per (part, dataset, name, seed) under bench/results/select/ (a rerun skips finished cells);
--collect writes bench/results/select.json for bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

CELLS = RESULTS / "select"
POOL = 10000
BUDGETS = (10, 20, 40)
LONG_BUDGETS = (10, 20, 40, 80, 160, 320)  # for the switch point: auto, typiclust, margin, random
LONG = ("auto", "typiclust", "margin", "random")
STRATEGIES = ("auto", "typiclust", "probcover", "coreset", "margin", "entropy", "badge", "random", "balanced")
PEER_STRATEGIES = ("typiclust", "probcover", "coreset", "margin")
NOISE = (0.2, 0.4)
LABELS_PER_CLASS = 25
SSL_RUN = "/work/ssl-runs/fashion-mnist-cnn-simclr-s0"


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
    from fewlabels.select.strategies import normalize

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

    from fewlabels.select.strategies import normalize

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
    from fewlabels.select.suggest import augmented_features

    run = load(ssl_run)
    x = data.load(dataset).train.x[torch.as_tensor(rows)]
    return augmented_features(run, x, 4, seed)


def labels_cell(dataset: str, noise: float, seed: int, emb: dict, ssl_run: str, peer: bool = False) -> dict:
    from fewlabels import data
    from fewlabels.data.noise import add_label_noise
    from fewlabels.select.check_labels import check_labels

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


FIXMATCH = {"iterations": 800, "batch_size": 32, "uratio": 3}  # bench/methods.py's short SSL budget


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


def run_cells(args) -> None:
    CELLS.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    peer = "peers" in args.parts
    for dataset in args.datasets.split(","):
        emb = embeddings(dataset, cache, args.ssl_run)
        jobs = []
        if "rounds" in args.parts:
            jobs += [("rounds", s, seed) for seed in args.seeds for s in (args.strategies or STRATEGIES)]
        if "coverage" in args.parts:
            jobs += [("coverage", s, seed) for seed in range(10) for s in ("auto", "random", "balanced")]
        if "labels" in args.parts or peer:
            jobs += [("labels", f"noise{n}", seed) for seed in args.seeds for n in NOISE]
        if peer:
            jobs += [("peers", s, seed) for seed in args.seeds for s in PEER_STRATEGIES]
        if "fixmatch" in args.parts:
            jobs += [("fixmatch", s, seed) for seed in args.seeds for s in ("auto", "random")]
        for part, name, seed in jobs:
            tag = "labels-peers" if part == "labels" and peer else part
            file = CELLS / f"{tag}-{dataset}-{name}-s{seed}.json"
            if file.exists():
                continue
            t0 = time.perf_counter()
            if part == "rounds":
                record = rounds_cell(dataset, name, seed, emb)
            elif part == "peers":
                record = rounds_cell(dataset, name, seed, emb, peer=True)
            elif part == "fixmatch":
                record = fixmatch_cell(dataset, name, seed, emb)
            elif part == "coverage":
                record = coverage_cell(dataset, name, seed, emb)
            else:
                record = labels_cell(dataset, float(name[5:]), seed, emb, args.ssl_run, peer)
            record.update({"part": tag, "dataset": dataset, "name": name, "seed": seed,
                           "embedding": str(emb["embedding"]), "wall_s": time.perf_counter() - t0})
            tmp = file.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1))
            tmp.replace(file)


def collect() -> None:
    cells = [json.loads(p.read_text()) for p in sorted(CELLS.glob("*.json"))]
    from fewlabels.select.strategies import SWITCH_PER_CLASS

    record = {"bench": "select", "title": "Which samples to label, and which labels to doubt", "machine": machine(),
              "pool": POOL, "switch_per_class": SWITCH_PER_CLASS, "labels_per_class": LABELS_PER_CLASS,
              "command": "python bench/selection.py --parts rounds,coverage,labels; "
                         "/work/peers-venv/bin/python bench/selection.py --parts peers; python bench/selection.py --collect",
              "cells": cells}
    out = RESULTS / "select.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"{len(cells)} cells -> {out}")


# ---- the table (bench/report.py calls it)


def _pct(values: list[float]) -> str:
    from common import mean_std

    if not values:
        return "—"
    m, sd = mean_std(values)
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def _rounds(cells: list[dict], part: str, dataset: str, name: str) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for c in cells:
        if c["part"] == part and c["dataset"] == dataset and c["name"] == name:
            for r in c["rounds"]:
                out.setdefault(r["labels"], []).append(r)
    return out


def table(record: dict) -> str:
    from common import mean_std

    cells, m = record["cells"], record["machine"]
    datasets = [d for d in ("fashion-mnist", "digits", "fashion-mnist-pca") if any(c["dataset"] == d for c in cells)]
    emb = {c["dataset"]: c["embedding"] for c in cells}
    lines = [f"## {record['title']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores shared with other work, torch {m['torch']}, one thread, "
             f"{m['date']}. Reproduce: `{record['command']}`.", "",
             "Simulated labeling rounds from zero labels (10, then 20, then 40 labels in all; an oracle gives the true "
             "class). The downstream learners are cheap stand-ins for FixMatch, on frozen embeddings: **label spreading** "
             "(scikit-learn, kNN kernel k=10, over the pool) and a **linear probe** (logistic regression, C=10). "
             "Accuracy on the test set (never selected on), mean ± std over 3 seeds (each seed: its own pool of "
             f"{record['pool']:,} training images on Fashion-MNIST, its own clustering and draws). Uncertainty "
             "strategies (margin, entropy, badge) take their first round at random (no model yet); between rounds "
             "their model is the linear probe. *balanced* is today's class-balanced random split; *random* is a "
             "uniform draw. fewlabels' strategies other than random apply the class-coverage pass once a model "
             "exists (a class the model predicts but nobody labeled gets a pick first; margin, entropy and badge "
             "also spread each round's picks over the predicted classes). "
             f"*auto* = typiclust below {record['switch_per_class']} labels per class, margin from there.", ""]
    for d in datasets:
        names = [n for n in STRATEGIES if _rounds(cells, "rounds", d, n)]
        if not names:
            continue
        lines += [f"### {d}: label spreading (linear probe) test accuracy %, classes covered ({emb[d]})", "",
                  "| strategy | " + " | ".join(f"{b} labels" for b in BUDGETS) + " | classes covered at 10 / 20 / 40 | "
                  "selection s / round |", "|---" * (len(BUDGETS) + 3) + "|"]
        for n in names:
            by = _rounds(cells, "rounds", d, n)
            accs = [f"{_pct([r['spreading'] for r in by.get(b, [])])} ({_pct([r['linear'] for r in by.get(b, [])])})"
                    for b in BUDGETS]
            cov = " / ".join(f"{mean_std([r['classes_covered'] for r in by.get(b, [])])[0]:.1f}" for b in BUDGETS)
            sel = mean_std([r["select_s"] for b in BUDGETS for r in by.get(b, [])])[0]
            lines.append(f"| {n} | " + " | ".join(accs) + f" | {cov} | {sel:.2f} |")
        lines.append("")
        longs = [n for n in LONG if set(LONG_BUDGETS) <= set(_rounds(cells, "rounds", d, n))]
        if longs:
            lines += [f"Where uncertainty overtakes typicality ({d}, label spreading %, later rounds 80 / 160 / 320 labels; "
                      "auto switches at "
                      f"{record['switch_per_class']} per class):", "",
                      "| strategy | " + " | ".join(f"{b}" for b in LONG_BUDGETS[3:]) + " |", "|---" * 4 + "|"]
            for n in longs:
                by = _rounds(cells, "rounds", d, n)
                lines.append(f"| {n} | " + " | ".join(_pct([r["spreading"] for r in by[b]]) for b in LONG_BUDGETS[3:]) + " |")
            lines.append("")
    fm = [c for c in cells if c["part"] == "fixmatch"]
    if fm:
        lines += ["### The headline cell with FixMatch: Fashion-MNIST, 20 labels picked from zero", "",
                  f"FixMatch from scratch (`cnn`, {FIXMATCH['iterations']} iterations, labeled batch "
                  f"{FIXMATCH['batch_size']}, unlabeled ratio {FIXMATCH['uratio']}: bench/methods.py's short budget) on "
                  "the seed's pool, whose only labels are the 20 picked in two rounds of 10 (the same picks as above); "
                  "final EMA model's test accuracy.", "",
                  "| picks | test accuracy % | seeds | classes covered | train s / seed |", "|---|---|---|---|---|"]
        for n in ("auto", "random"):
            cs = [c for c in fm if c["name"] == n]
            if cs:
                lines.append(f"| {n} | {_pct([c['test_accuracy'] for c in cs])} | {len(cs)} | "
                             f"{mean_std([c['classes_covered'] for c in cs])[0]:.1f} | "
                             f"{mean_std([c['train_s'] for c in cs])[0]:.0f} |")
        lines.append("")
    cov = [c for c in cells if c["part"] == "coverage"]
    if cov:
        lines += ["### Classes covered, 10 seeds (selection only)", "",
                  "| dataset | picks | all 10 classes at 10 labels | at 20 labels | mean classes at 20 |", "|---|---|---|---|---|"]
        for d in datasets:
            for n in ("auto", "random", "balanced"):
                cs = [c for c in cov if c["dataset"] == d and c["name"] == n]
                if cs:
                    full10 = sum(c["covered"]["10"] == 10 for c in cs)
                    full20 = sum(c["covered"]["20"] == 10 for c in cs)
                    mean20 = mean_std([c["covered"]["20"] for c in cs])[0]
                    lines.append(f"| {d} | {n} | {full10} of {len(cs)} | {full20} of {len(cs)} | {mean20:.1f} |")
        lines.append("")
    peers = [c for c in cells if c["part"] == "peers"]
    if peers:
        lines += ["### Peer check: scikit-activeml's strategies on the same embeddings, budgets and learners", "",
                  "Label spreading test accuracy % at 10 / 20 / 40 labels, and the selection time summed over the three "
                  "rounds (s, same machine, same process kind). scikit-activeml runs with its defaults except "
                  "TypiClust's k=20 neighbours (the paper's, as in fewlabels) and ProbCover's class count; its margin "
                  "sampling refits the same logistic regression. fewlabels' rows include its class-coverage pass.", "",
                  "| dataset | strategy | fewlabels | scikit-activeml | fewlabels s | scikit-activeml s |", "|---|---|---|---|---|---|"]
        for d in datasets:
            for n in PEER_STRATEGIES:
                peer = _rounds(cells, "peers", d, n)
                ours = _rounds(cells, "rounds", d, n)
                if not peer:
                    continue
                fmt = (lambda by: " / ".join(_pct([r["spreading"] for r in by.get(b, [])]) for b in BUDGETS))
                secs = (lambda by: sum(r["select_s"] for b in BUDGETS for r in by.get(b, [])) / max(len(by.get(BUDGETS[0], [])), 1))
                lines.append(f"| {d} | {n} | {fmt(ours)} | {fmt(peer)} | {secs(ours):.1f} | {secs(peer):.1f} |")
        lines.append("")
    lab = [c for c in cells if c["part"] in ("labels", "labels-peers")]
    if lab:
        lines += [f"### Label checking: planted symmetric noise, {record['labels_per_class']} labels per class", "",
                  "Precision / recall / F1 of the flagged samples against the flipped ones, mean over 3 seeds. cleanlab's "
                  "`find_label_issues` (defaults) gets the very probabilities fewlabels flags from (the mean of cross-fitted, "
                  "augmented-view and neighbour probabilities), and also the cross-fitted ones alone.", "",
                  "| dataset | noise | method | precision | recall | F1 | seconds |", "|---|---|---|---|---|---|---|"]
        for d in datasets:
            for noise in NOISE:
                cs = [c for c in lab if c["dataset"] == d and c["name"] == f"noise{noise}"]
                peer_cs = [c for c in cs if c["part"] == "labels-peers"]
                use = peer_cs or cs
                for method in ("fewlabels", "cleanlab", "cleanlab_crossfit_only"):
                    rs = [c[method] for c in use if method in c]
                    if rs:
                        f = {k: mean_std([r[k] for r in rs])[0] for k in ("precision", "recall", "f1", "seconds")}
                        lines.append(f"| {d} | {int(100 * noise)}% | {method} | {f['precision']:.2f} | {f['recall']:.2f} | "
                                     f"{f['f1']:.2f} | {f['seconds']:.2f} |")
        lines.append("")
    notes = Path(__file__).resolve().parent / "notes" / "select.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="rounds,coverage,labels", help="rounds, coverage, labels, peers")
    ap.add_argument("--datasets", default="digits,fashion-mnist", help="also fashion-mnist-pca: the cold-start PCA")
    ap.add_argument("--strategies", type=lambda s: s.split(","), help="rounds: these strategies only (default all)")
    ap.add_argument("--seeds", default="0,1,2", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--cache", default="/tmp/fewlabels-select-cache", help="where the embeddings are cached")
    ap.add_argument("--ssl-run", default=SSL_RUN)
    ap.add_argument("--collect", action="store_true", help="gather the cells into bench/results/select.json")
    args = ap.parse_args()
    if args.collect:
        collect()
    else:
        run_cells(args)


if __name__ == "__main__":
    main()
