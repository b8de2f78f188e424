"""Supervised-only vs FixMatch vs LabelSpreading on Fashion-MNIST with 4 labels per class.

Same split per seed for all three; one fixed budget for both networks; the final
EMA model's test accuracy is reported (no checkpoint or hyper-parameter is chosen
on the test set). Writes bench/results/fixmatch_fmnist.json and regenerates
BENCHMARKS.md.

    python bench/fixmatch_fmnist.py                 # the published numbers
    python bench/fixmatch_fmnist.py --iterations 200 --seeds 0   # a smoke run
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
from fewlabels.train import TrainConfig, train  # noqa: E402
from fewlabels.utils.io import atomic_write_json  # noqa: E402


def label_spreading(source, split, seed: int) -> dict:
    """scikit-learn's LabelSpreading (knn kernel) on raw pixels, the same labeled subset."""
    from sklearn.semi_supervised import LabelSpreading

    x = source.train.x.reshape(len(source.train), -1).numpy().astype(np.float32) / 255.0
    y = np.full(len(x), -1, dtype=np.int64)
    y[split.labeled] = source.train.y[split.labeled].numpy()
    started = time.time()
    model = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100, n_jobs=-1)
    model.fit(x, y)
    xt = source.test.x.reshape(len(source.test), -1).numpy().astype(np.float32) / 255.0
    acc = float((model.predict(xt) == source.test.y.numpy()).mean())
    return {"method": "LabelSpreading (knn, k=7)", "seed": seed, "test_accuracy": acc,
            "wall_time_s": round(time.time() - started, 1), "iterations": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--labels-per-class", type=int, default=4)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--runs", default="runs/bench-fixmatch-fmnist")
    ap.add_argument("--out", default=str(RESULTS / "fixmatch_fmnist.json"))
    args = ap.parse_args()

    source = data.load("fashion-mnist")
    rows = []
    for seed in args.seeds:
        split = data.split(source.train.y, labels_per_class=args.labels_per_class, seed=seed)
        for algorithm in ("supervised", "fixmatch"):
            cfg = TrainConfig(dataset="fashion-mnist", labels_per_class=args.labels_per_class, seed=seed,
                              algorithm=algorithm, model=args.model, iterations=args.iterations,
                              eval_every=max(1, args.iterations // 5),
                              out=f"{args.runs}/{algorithm}-s{seed}")
            res = train(cfg, source=source, progress=False, overwrite=True)
            rows.append({"method": algorithm, "seed": seed, "test_accuracy": res["test_accuracy"],
                         "wall_time_s": res["wall_time_s"], "iterations": res["iterations"],
                         "mask_rate": res.get("final_mask_rate"),
                         "pseudo_label_acc": res.get("final_pseudo_label_acc"),
                         "checkpoint_share": res["checkpoint_time_s"] / res["wall_time_s"]})
            print(f"seed {seed} {algorithm}: {res['test_accuracy']:.4f} in {res['wall_time_s']:.0f}s", flush=True)
        rows.append(label_spreading(source, split, seed))
        print(f"seed {seed} LabelSpreading: {rows[-1]['test_accuracy']:.4f}", flush=True)
    record = {
        "bench": "fixmatch_fmnist",
        "title": f"Fashion-MNIST, {args.labels_per_class} labels per class: supervised vs FixMatch vs LabelSpreading",
        "command": command(),
        "dataset": "fashion-mnist",
        "labels_per_class": args.labels_per_class,
        "model": args.model,
        "batch_size": TrainConfig.batch_size,
        "uratio": TrainConfig.uratio,
        "machine": machine(),
        "rows": rows,
    }
    atomic_write_json(args.out, record)
    from report import write_benchmarks

    write_benchmarks()


if __name__ == "__main__":
    main()
