"""SemiSupervisedClassifier vs scikit-learn's semi-supervised estimators on digits, 5 labels per class.

Every method sees the same labeled subset per seed (``fewlabels.data.split``) and the same
unlabeled rest of the digits training pool, and is scored on the fixed digits test set. The
fewlabels estimator runs with its defaults (1,000 steps, batch 64, uratio 7, lr 0.03, threshold
0.95; the step budget chosen on the unlabeled rows' hidden labels, see fewlabels/sklearn.py);
nothing is tuned on the test set. Writes bench/results/sklearn_digits.json and regenerates BENCHMARKS.md.

    python bench/sklearn_digits.py                          # the published numbers (5 seeds, ~8 min on 2 cores)
    python bench/sklearn_digits.py --iterations 20 --seeds 0 --out /tmp/smoke.json   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, machine  # noqa: E402

from fewlabels import data  # noqa: E402
from fewlabels.sklearn import SemiSupervisedClassifier  # noqa: E402
from fewlabels.utils.io import atomic_write_json  # noqa: E402


def timed(method: str, seed: int, est, X, y, X_test, y_test, iterations: int | None = None) -> dict:
    """Fit and predict one estimator; wall time covers both, for every method alike."""
    started = time.time()
    est.fit(X, y)
    acc = float((est.predict(X_test) == y_test).mean())
    row = {"method": method, "seed": seed, "test_accuracy": acc, "wall_time_s": round(time.time() - started, 2),
           "iterations": iterations}
    if hasattr(est, "run_"):
        row["mask_rate"] = est.run_.results.get("final_mask_rate")
        row["pseudo_label_acc"] = est.run_.results.get("final_pseudo_label_acc")
    print(f"seed {seed} {method}: {acc:.4f} in {row['wall_time_s']:.1f}s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=SemiSupervisedClassifier().iterations)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--labels-per-class", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timing on a shared machine)")
    ap.add_argument("--out", default=str(RESULTS / "sklearn_digits.json"))
    args = ap.parse_args()

    import torch
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    torch.set_num_threads(args.threads)
    source = data.load("digits")
    images, y_all = source.train.x[:, 0].numpy(), source.train.y.numpy()  # (N, 8, 8) uint8
    test_images, y_test = source.test.x[:, 0].numpy(), source.test.y.numpy()
    features = images.reshape(len(images), -1).astype(np.float32) / 255.0  # the same pixels as 64 features on 0..1
    test_features = test_images.reshape(len(test_images), -1).astype(np.float32) / 255.0
    defaults = SemiSupervisedClassifier()
    rows = []
    for seed in args.seeds:
        split = data.split(y_all, labels_per_class=args.labels_per_class, seed=seed)
        y = np.full(len(y_all), -1, dtype=np.int64)
        y[split.labeled] = y_all[split.labeled]
        ours = SemiSupervisedClassifier(iterations=args.iterations, seed=seed)
        rows.append(timed("SemiSupervisedClassifier, images (cnn)", seed, ours, images, y, test_images, y_test, args.iterations))
        rows.append(timed("SemiSupervisedClassifier, features (mlp)", seed, clone(ours), features, y, test_features, y_test,
                          args.iterations))
        rows.append(timed("LabelSpreading (knn, k=7)", seed, LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100),
                          features, y, test_features, y_test))
        rows.append(timed("SelfTrainingClassifier (LogisticRegression)", seed,
                          SelfTrainingClassifier(LogisticRegression(max_iter=1000)), features, y, test_features, y_test))
    record = {
        "bench": "sklearn_digits",
        "title": f"digits, {args.labels_per_class} labels per class: fewlabels' scikit-learn estimator vs "
                 "LabelSpreading and SelfTrainingClassifier",
        "command": command(),
        "dataset": "digits",
        "labels_per_class": args.labels_per_class,
        "model": "cnn on 8x8 images / mlp on 64 features",
        "batch_size": defaults.batch_size,
        "uratio": defaults.uratio,
        "machine": machine(),
        "rows": rows,
        "notes": (
            f"All methods share each seed's labeled subset ({args.labels_per_class} per class) and the unlabeled rest of the "
            f"{len(y_all)}-image digits training pool; accuracy is on the fixed {len(y_test)}-image digits test set. "
            f"SemiSupervisedClassifier runs with its default settings ({args.iterations} steps, batch {defaults.batch_size}, "
            f"uratio {defaults.uratio}, lr {defaults.lr}, FixMatch threshold 0.95; "
            "the budget chosen on the unlabeled rows' hidden labels, never the test set); "
            "the scikit-learn estimators use their defaults (LabelSpreading: knn kernel, k=7, max_iter=100; "
            "SelfTrainingClassifier: threshold 0.75 around LogisticRegression(max_iter=1000)) on the same pixels scaled to 0..1. "
            f"Wall time is fit + predict per seed with {args.threads} torch thread(s)."
        ),
    }
    atomic_write_json(args.out, record)
    from report import write_benchmarks

    write_benchmarks()


if __name__ == "__main__":
    main()
