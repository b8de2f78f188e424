"""Self-supervised pretraining at a fixed wall-clock budget, scored by kNN and linear probes with few and all labels.

    python bench/pretraining.py --dataset fashion-mnist --methods simclr,byol,mocov3,barlowtwins,vicreg,supcon --budget-s 600
    python bench/pretraining.py --dataset fashion-mnist --floors          # raw pixels, random-init encoder, FixMatch's encoder
    python bench/report.py

Each run's budget is wall-clock seconds: the steps a method gets are the budget divided by its
own time per step, measured on 10 steps after 3 warm-up steps in the same process (so a slower
method gets fewer steps, and the steps and images seen are recorded). Probes use the final EMA
model's backbone features: weighted kNN (k=20, T=0.07) and logistic regression on L2-normalized
features, at 4 and 25 labels per class (3 labeled splits each, seeds 0-2) and with every label.
Nothing is chosen on the test set: every method runs with its defaults and the same optimizer.
One file per run under bench/results/ssl/ (a rerun skips finished runs); bench/results/ssl.json
collects them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

RUNS = RESULTS / "ssl"
PROBE_LABELS = (4, 25)
PROBE_SEEDS = (0, 1, 2)
VAL_FRACTION = 0.1


def calibrated_iterations(config, budget_s: float) -> tuple[int, float]:
    """Steps that fit ``budget_s`` at this method's measured time per step."""
    import torch

    from fewlabels.train import prepare
    from fewlabels.train.loop import Trainer

    trainer = Trainer(prepare(config), progress=False)
    for _ in range(3):
        trainer.train_step({})
    t0 = time.perf_counter()
    for _ in range(10):
        trainer.train_step({})
    per_step = (time.perf_counter() - t0) / 10
    del trainer
    torch.manual_seed(0)
    return max(10, int(budget_s / per_step)), per_step


def score(model, source, channels_last: bool) -> dict:
    """kNN and linear-probe test accuracy at few labels (3 splits) and with all labels."""
    import torch

    from fewlabels.data import split
    from fewlabels.evaluate.metrics import accuracy
    from fewlabels.evaluate.probe import embed, fit_predict

    train, test = source.train, source.test
    pool = embed(model, train.x, channels_last=channels_last)
    queries = embed(model, test.x, channels_last=channels_last)
    k = len(train.classes)
    out: dict = validation_scores(pool, train)
    for method in ("knn", "linear"):
        for lpc in PROBE_LABELS:
            accs = []
            for seed in PROBE_SEEDS:
                s = split(train.y, lpc, None, 0, seed, train.classes)
                idx = torch.as_tensor(s.labeled, dtype=torch.int64)
                accs.append(accuracy(test.y, fit_predict(method, pool[idx], train.y[idx], queries, k)))
            out[f"{method}_{lpc}pc"] = accs
        out[f"{method}_all"] = accuracy(test.y, fit_predict(method, pool, train.y, queries, k))
    return out


def validation_scores(pool, train) -> dict:
    """The same few-label probes with held-out *pool* images as queries: what settings are chosen on, never the test set.

    The pool's last ``VAL_FRACTION`` (a fixed permutation) answers; the labeled memory is drawn from the rest.
    Pretraining saw these images without labels, as it sees the test set's kind of images.
    """
    import torch

    from fewlabels.data import split
    from fewlabels.evaluate.metrics import accuracy
    from fewlabels.evaluate.probe import fit_predict

    order = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(1234))
    n_val = int(VAL_FRACTION * len(order))
    val, rest = order[-n_val:], order[:-n_val]
    y_rest = train.y[rest]
    out: dict = {}
    for method in ("knn", "linear"):
        accs = []
        for seed in PROBE_SEEDS:
            s = split(y_rest, 4, None, 0, seed, train.classes)
            idx = rest[torch.as_tensor(s.labeled, dtype=torch.int64)]
            accs.append(accuracy(train.y[val], fit_predict(method, pool[idx], train.y[idx], pool[val], len(train.classes))))
        out[f"val_{method}_4pc"] = accs
    return out


def raw_pixels(x):
    return x.flatten(1).float() / 255.0


class Pixels:
    """A 'model' whose features are the raw pixels, so the same probes score the pixel floor."""

    def __call__(self, x):
        import torch

        return torch.zeros(len(x), 1), raw_pixels(x)

    def eval(self):
        return self

    training = False

    def train(self, mode=True):
        return self


def run_method(args, method: str, model_name: str, seed: int) -> dict:
    import torch

    from fewlabels import data as data_mod
    from fewlabels.api import load
    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    settings = dict(dataset=args.dataset, algorithm=method, model=model_name, labels_per_class=4, seed=seed,
                    batch_size=args.batch_size, uratio=args.uratio, lr=args.lr, options=args.options)
    iterations, per_step = calibrated_iterations(TrainConfig(**settings, iterations=1000), args.budget_s)
    out = Path(args.runs) / f"{args.dataset}-{model_name}-{method}{variant(args)}-s{seed}"
    t0 = time.time()
    res = train(TrainConfig(**settings, iterations=iterations, eval_every=iterations, checkpoint_every=iterations,
                            out=str(out)), progress=False, overwrite=True)
    wall = time.time() - t0
    trained = load(out)
    views = 2 * args.batch_size * args.uratio + args.batch_size * (3 if method == "supcon" else 1)
    row = {"method": method, "model": model_name, "seed": seed, "options": args.options, "budget_s": args.budget_s,
           "iterations": iterations,
           "s_per_step": per_step,
           "images_seen": iterations * views, "wall_time_s": wall, "train_time_s": res["train_time_s"],
           "alignment": res.get("final_alignment"), "uniformity": res.get("final_uniformity"),
           "emb_spread": res.get("final_emb_spread"), "online_knn_4pc": res.get("final_knn_acc"),
           "online_probe_4pc": res.get("test_accuracy")}
    row.update(score(trained.model, data_mod.load(args.dataset), channels_last=True))
    return row


def run_floor(args, name: str) -> dict:
    import torch

    from fewlabels import data as data_mod
    from fewlabels import models
    from fewlabels.api import load
    from fewlabels.train import TrainConfig, train
    from fewlabels.train.preparation import normalization_stats

    torch.set_num_threads(1)
    source = data_mod.load(args.dataset)
    row = {"method": name, "model": "—" if name == "raw pixels" else "cnn", "seed": 0}
    if name == "raw pixels":
        model = Pixels()
    elif name == "random init":
        torch.manual_seed(0)
        model = models.get("cnn", source.train.sample_shape, source.train.num_classes)
        model.set_normalization(*normalization_stats(source.train.x))
    else:  # FixMatch's encoder at the demo's budget
        out = Path(args.runs) / f"{args.dataset}-cnn-fixmatch-demo"
        t0 = time.time()
        res = train(TrainConfig(dataset=args.dataset, algorithm="fixmatch", iterations=1500, eval_every=1500,
                                checkpoint_every=1500, out=str(out)), progress=False, overwrite=True)
        row.update(iterations=1500, wall_time_s=time.time() - t0, online_probe_4pc=res["test_accuracy"])
        model = load(out).model
    row.update(score(model, source, channels_last=name != "raw pixels"))
    return row


def rescore(args) -> None:
    """Rows recorded before the validation probes existed get them from their run folders (the test figures stay)."""
    import torch

    from fewlabels import data as data_mod
    from fewlabels.api import load
    from fewlabels.evaluate.probe import embed
    from fewlabels.utils.io import atomic_write_json

    torch.set_num_threads(1)
    for file in sorted(RUNS.glob(f"{args.dataset}-*.json")):
        row = json.loads(file.read_text())
        suffix = "".join(f"-{k}={v}" for k, v in sorted((row.get("options") or {}).items()))
        folder = Path(args.runs) / f"{row['dataset']}-{row['model']}-{row['method']}{suffix}-s{row['seed']}"
        if "val_knn_4pc" in row or not (folder / "results.json").exists():
            continue
        train = data_mod.load(row["dataset"]).train
        row.update(validation_scores(embed(load(folder).model, train.x, channels_last=True), train))
        atomic_write_json(file, row)
        print(file.name, row["val_knn_4pc"], row["val_linear_4pc"], flush=True)
    collect(args)


def variant(args) -> str:
    """A file-name suffix for non-default options (view=crop -> '-view=crop')."""
    return "".join(f"-{k}={v}" for k, v in sorted(args.options.items()))


def collect(args) -> None:
    from fewlabels.utils.io import atomic_write_json

    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    record = {"bench": "ssl", "title": "Self-supervised pretraining: kNN and linear probes at a fixed CPU budget",
              "budget_s": args.budget_s, "batch_size": args.batch_size, "uratio": args.uratio, "lr": args.lr,
              "probe_labels": list(PROBE_LABELS), "probe_seeds": list(PROBE_SEEDS), "machine": machine(),
              "command": "python bench/pretraining.py --dataset fashion-mnist --budget-s 600 && python bench/pretraining.py "
                         "--dataset fashion-mnist --floors; the same with --dataset digits --budget-s 120", "rows": rows}
    atomic_write_json(RESULTS / "ssl.json", record)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--methods", default="simclr,byol,mocov3,barlowtwins,vicreg,supcon")
    p.add_argument("--models", default="cnn")
    p.add_argument("--seeds", default="0")
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--uratio", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--floors", action="store_true", help="raw pixels, random-init cnn, FixMatch's encoder at the demo budget")
    p.add_argument("--runs", default="runs/bench-ssl", help="where the run folders go")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="a method option, e.g. view=crop")
    p.add_argument("--rescore", action="store_true", help="add validation-split probes to rows whose run folder is in --runs")
    args = p.parse_args()
    from fewlabels.commands.common import parse_assignment

    args.options = dict(parse_assignment(o, "--option") for o in args.option)
    from fewlabels.utils.io import atomic_write_json

    RUNS.mkdir(parents=True, exist_ok=True)
    if args.rescore:
        rescore(args)
        return
    jobs = ([("floor", name, "", 0) for name in ("raw pixels", "random init", "fixmatch encoder")] if args.floors else
            [("method", m, model, int(s)) for model in args.models.split(",") for m in args.methods.split(",")
             for s in args.seeds.split(",")])
    for kind, name, model_name, seed in jobs:
        suffix = variant(args) if kind == "method" else ""
        file = RUNS / f"{args.dataset}-{(model_name or 'floor')}-{name.replace(' ', '_')}{suffix}-s{seed}.json"
        if file.exists():
            continue
        row = run_floor(args, name) if kind == "floor" else run_method(args, name, model_name, seed)
        row["dataset"] = args.dataset
        atomic_write_json(file, row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
        collect(args)
    collect(args)


if __name__ == "__main__":
    main()
