"""Feature vectors: fewlabels' default for features (labelprop) vs scikit-learn's semi-supervised estimators.

Datasets: digits as 64 pixel features (5 labels per class), Fashion-MNIST pixels as 784 features and
Fashion-MNIST embeddings from a self-supervised run (4 per class), scikit-learn's two moons and circles
(1 and 3 per class), breast cancer (a table, 5 per class). Every method sees the same labeled rows per
seed (``fewlabels.data.split``) and the same unlabeled rest; accuracy is on each set's fixed test split.
scikit-learn's estimators run with their defaults on standardized features (a scaler fitted on the
pool); fewlabels runs with its defaults (the API's ``fit``, 3,000 steps). One JSON per run under
bench/results/features/ (reruns skip finished ones), then bench/results/features.json and BENCHMARKS.md.

    python bench/features.py --embedding EMB.npz     # EMB.npz: fewlabels embed RUN_DIR --out EMB.npz
    python bench/features.py --datasets moons --seeds 0 --iterations 50   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, machine  # noqa: E402

from fewlabels.utils.io import atomic_write_json  # noqa: E402

OURS = ("labelprop", "supervised", "fixmatch")
THEIRS = ("LabelSpreading (knn, k=7)", "LabelSpreading (rbf)", "SelfTraining (LogisticRegression)", "LogisticRegression (labels only)")
RBF_MAX_ROWS = 5000  # the rbf kernel is a dense n x n matrix: 60,000 rows would need 29 GB
SETS = {  # name: (labels per class, ...)
    "digits": (5,), "fmnist-pixels": (4,), "fmnist-embedding": (4,), "moons": (1, 3), "circles": (1, 3), "breast-cancer": (5,),
}


def load(name: str, embedding: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(X, y, X_test, y_test, description) as float32 features."""
    from sklearn import datasets

    from fewlabels import data

    if name in ("digits", "fmnist-pixels"):
        s = data.load("digits" if name == "digits" else "fashion-mnist")
        flat = [d.x.reshape(len(d.x), -1).float().numpy() / 255.0 for d in (s.train, s.test)]
        return flat[0], s.train.y.numpy(), flat[1], s.test.y.numpy(), f"{flat[0].shape[1]} pixels on 0..1"
    if name == "fmnist-embedding":
        if embedding is None:
            raise SystemExit("fmnist-embedding needs --embedding EMB.npz (fewlabels embed RUN_DIR --out EMB.npz)")
        with np.load(embedding) as f:
            return (f["X"].astype(np.float32), f["y"], f["X_test"].astype(np.float32), f["y_test"],
                    f"{f['X'].shape[1]}-d embedding ({Path(embedding).name})")
    if name in ("moons", "circles"):
        def make(seed: int):
            if name == "moons":
                return datasets.make_moons(1000, noise=0.1, random_state=seed)
            return datasets.make_circles(1000, noise=0.05, factor=0.5, random_state=seed)
        (x, y), (xt, yt) = make(0), make(1)
        noise = "noise 0.1" if name == "moons" else "noise 0.05, factor 0.5"
        return x.astype(np.float32), y, xt.astype(np.float32), yt, f"2-d, 1,000 + 1,000 test points, {noise}"
    if name == "breast-cancer":
        from sklearn.model_selection import train_test_split

        x, y = datasets.load_breast_cancer(return_X_y=True)
        x, xt, y, yt = train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)
        return x, y, xt, yt, "30 features, 398 + 171 test rows (a fixed stratified 70/30 split)"
    raise SystemExit(f"unknown dataset {name}")


def run_ours(method: str, x, y, xt, yt, seed: int, iterations: int) -> dict:
    import fewlabels

    started = time.time()
    run = fewlabels.fit(x, y, algorithm=method, test=(xt, yt), seed=seed, iterations=iterations,
                        eval_every=iterations, progress=False)
    return {"test_accuracy": run.results["test_accuracy"], "wall_time_s": round(time.time() - started, 2),
            "iterations": iterations, "pseudo_label_acc": run.results.get("final_pseudo_label_acc")}


def run_theirs(method: str, x, y, xt, yt, seed: int) -> dict | None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    if method == "LabelSpreading (rbf)" and len(x) > RBF_MAX_ROWS:
        return None
    scaler = StandardScaler().fit(x)
    xs, xts = scaler.transform(x), scaler.transform(xt)
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LabelSpreading's divide-by-zero on unreachable rows; convergence notes
        if method == "LogisticRegression (labels only)":
            est = LogisticRegression(max_iter=1000).fit(xs[y >= 0], y[y >= 0])
        else:
            est = {"LabelSpreading (knn, k=7)": LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100),
                   "LabelSpreading (rbf)": LabelSpreading(),
                   "SelfTraining (LogisticRegression)": SelfTrainingClassifier(LogisticRegression(max_iter=1000))}[method]
            est.fit(xs, y)
        acc = float((est.predict(xts) == yt).mean())
    return {"test_accuracy": acc, "wall_time_s": round(time.time() - started, 2), "iterations": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(SETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=3000, help="fewlabels' steps (the API's default)")
    ap.add_argument("--embedding", help="the .npz `fewlabels embed` wrote for fmnist-embedding")
    ap.add_argument("--runs", default=str(RESULTS / "features"), help="one JSON per run (reruns skip finished ones)")
    ap.add_argument("--out", default=str(RESULTS / "features.json"))
    args = ap.parse_args()

    import torch

    from fewlabels import data

    torch.set_num_threads(1)
    runs = Path(args.runs)
    described = {}
    for name in args.datasets:
        if name == "fmnist-embedding" and args.embedding is None:
            print("skipping fmnist-embedding: no --embedding given", flush=True)
            continue
        x, y_all, xt, yt, described[name] = load(name, args.embedding)
        for lpc in SETS[name]:
            for seed in args.seeds:
                split = data.split(y_all, labels_per_class=lpc, seed=seed)
                y = np.full(len(y_all), -1, dtype=np.int64)
                y[split.labeled] = y_all[split.labeled]
                for method in (*OURS, *THEIRS):
                    file = runs / f"{name}-{lpc}pc-s{seed}-{method.split(' ')[0].lower()}{'-rbf' if 'rbf' in method else ''}" \
                                  f"{'-labels' if 'labels only' in method else ''}.json"
                    if file.exists():
                        continue
                    row = (run_ours(method, x, y, xt, yt, seed, args.iterations) if method in OURS
                           else run_theirs(method, x, y, xt, yt, seed))
                    if row is None:
                        continue
                    row = {"dataset": name, "labels_per_class": lpc, "seed": seed, "method": method, **row}
                    atomic_write_json(file, row)
                    print(f"{name} {lpc}pc seed {seed} {method}: {100 * row['test_accuracy']:.2f}% "
                          f"in {row['wall_time_s']:.1f}s", flush=True)
    rows = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    record = {"bench": "features", "title": "Feature vectors: fewlabels' default (labelprop) vs scikit-learn's "
              "semi-supervised estimators", "command": command(), "machine": machine(), "iterations": args.iterations,
              "datasets": {**old.get("datasets", {}), **described}, "rows": rows}
    atomic_write_json(args.out, record)
    from report import write_benchmarks

    write_benchmarks()


if __name__ == "__main__":
    main()
