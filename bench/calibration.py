"""Calibration without a validation split: candidate estimators of the temperature at 4 labels per class.

    nice -n 10 python bench/calibration.py                        # the grid: 5 cells x 3 seeds
    nice -n 10 python bench/calibration.py --cells digits:fixmatch:300 --seeds 0
    python bench/report.py                                        # BENCHMARKS.md

Every run trains with ``--val-per-class 0`` (nothing labeled is held out), then each candidate estimates T from
what the run has without the test set: its labeled images, its unlabeled pool, its views. The test set only scores:
ECE (15 bins) and NLL of the final EMA model's served logits (with the run's TTA) at each candidate's T. The
"test-fitted" row is T fitted on the test labels themselves: the floor temperature scaling can reach, a reference,
never a candidate. Digits was the tuning set (the weak-view ensemble was chosen on it); Fashion-MNIST the check.
One JSON per run under bench/results/calibration/ (a rerun skips finished runs); calibration.json collects them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine, mean_std, notes_lines  # noqa: E402

RUNS = RESULTS / "calibration"
FINISHED = RUNS / "finished"  # calibration_finished.py's rows: runs of other benches, scored without retraining
RECORD = RESULTS / "calibration.json"
DATA = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
CELLS = ["digits:fixmatch:300", "digits:softmatch:300", "digits:supervised:300", "fashion-mnist:fixmatch:300",
         "fashion-mnist:softmatch:300"]
CANDIDATES = {  # name: what it fits on (the table's words)
    "none": "T = 1: the network's own probabilities",
    "adopted": "what results.json records: the pool's weak-view ensemble, guarded (never below 1; unsure: lower end)",
    "pool-weak": "unguarded: T matching the clean prediction to the mean over 4 weak views, 2,000 pool images",
    "pool-strong": "the same with strong views (RandAugment + Cutout)",
    "labeled-strong": "NLL of 32 strong views of each labeled image (the labels the run trained on)",
    "labeled": "NLL of the labeled images themselves (memorized)",
    "head-crossfit": "4-fold cross-fitted linear head on the frozen features of the labeled images, its T as is",
    "test-fitted": "reference only: NLL on the test labels (the floor; never used)",
}


def linear_head(f, y, k: int):
    """A softmax-regression head (L2 1e-3) on features ``f``, fitted by L-BFGS in float64."""
    import torch

    w = torch.zeros(f.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(f @ w + b, y) + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def head_crossfit_temperature(feats, y, folds: int = 4) -> float:
    """T of a linear head refitted on K-1 folds of the labeled features, fitted on the held-out folds' logits."""
    import torch

    from fewlabels.evaluate.calibration import fit_temperature

    f, y = feats.double(), y.long()
    k = int(y.max()) + 1
    held = torch.zeros(len(y), k, dtype=torch.float64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    for i in range(folds):
        out = order[i::folds]
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[out] = False
        w, b = linear_head(f[keep], y[keep], k)
        held[out] = f[out] @ w + b
    return fit_temperature(held, y)


def score_candidates(z, y, t_fit: dict) -> dict:
    """Each candidate's T with the test ECE (15 bins) and NLL of the served logits ``z`` at it: the test set only scores."""
    from fewlabels.evaluate.calibration import expected_calibration_error, nll, scaled_probs

    return {name: {"temperature": round(t, 4), "ece": expected_calibration_error(scaled_probs(z, t), y),
                   "nll": nll(z, y, t)} for name, t in t_fit.items()}


def one_run(dataset: str, algorithm: str, iterations: int, seed: int) -> dict:
    import time

    import torch

    from fewlabels.evaluate.calibration import fit_temperature
    from fewlabels.evaluate.pool_calibration import ensemble_targets, fit_temperature_to, pool_evidence
    from fewlabels.evaluate.tta import tta_logits
    from fewlabels.train import TrainConfig
    from fewlabels.train.loop import Trainer, prepare

    cfg = TrainConfig(dataset=dataset, data_dir=DATA.get(dataset), algorithm=algorithm, labels_per_class=4,
                      val_per_class=0, seed=seed, iterations=iterations, eval_every=iterations, checkpoint_every=iterations)
    trainer = Trainer(prepare(cfg), progress=False)
    t0 = time.time()
    res = trainer.run()
    model, mode = trainer.ema.module, trainer.cfg.tta

    def served(x):
        return tta_logits(lambda v: trainer.predict(model, v), x, mode)

    labeled = torch.as_tensor(trainer.p.split.labeled, dtype=torch.int64)
    x_l, y_l = trainer.train_x[labeled], trainer.train_y[labeled]
    g = torch.Generator().manual_seed(seed)
    strong = torch.stack([served(trainer.batches.views["strong"](x_l, g)) for _ in range(32)])
    t_fit = {"none": 1.0, "adopted": res["temperature"] or 1.0, "labeled": fit_temperature(served(x_l), y_l),
             "labeled-strong": fit_temperature(strong.flatten(0, 1), y_l.repeat(len(strong)))}
    for view in ("weak", "strong"):
        clean, views = pool_evidence(trainer, served, view=view)
        t_fit[f"pool-{view}"] = fit_temperature_to(clean, ensemble_targets(views))
    if trainer.p.source.train.is_image:
        t_fit["head-crossfit"] = head_crossfit_temperature(trainer.predict_outputs(model, x_l)[1], y_l)
    test = trainer.p.source.test
    z = served(test.x)
    t_fit["test-fitted"] = fit_temperature(z, test.y)
    scored = score_candidates(z, test.y, t_fit)
    return {"dataset": dataset, "algorithm": algorithm, "iterations": iterations, "seed": seed,
            "test_accuracy": res["test_accuracy"], "tta": mode, "candidates": scored,
            "recorded": {k: v for k, v in res.items() if k.startswith("temperature")},
            "wall_s": round(time.time() - t0, 1), "machine": machine()}


def pipeline_row(final_stage: str, seed: int) -> dict:
    """The same scores for a finished ``fewlabels pipeline``'s final (distilled) stage, from its folder.

    Its results.json holds the adopted T and the strong-view one; the served test logits are scored at each
    (the labeled-set candidates need the trainer's views and are left out here).
    """
    import torch

    from fewlabels.api import load
    from fewlabels.data import load as load_data
    from fewlabels.evaluate.calibration import fit_temperature
    from fewlabels.evaluate.tta import served

    run = load(final_stage)
    serving = served(run)
    test = load_data(run.config.dataset, run.config.data_dir).test
    z = torch.cat([serving.logits(test.x[i : i + 512]) for i in range(0, len(test.x), 512)]).double() * serving.temperature
    res = run.results
    t_fit = {"none": 1.0, "adopted": res.get("temperature") or 1.0, "pool-weak": res.get("temperature_estimate") or 1.0,
             "pool-strong": res.get("temperature_strong_views") or 1.0, "test-fitted": fit_temperature(z, test.y)}
    scored = score_candidates(z, test.y, t_fit)
    return {"dataset": run.config.dataset, "algorithm": "pipeline (final stage: distill)", "iterations": res.get("iterations"),
            "seed": seed, "test_accuracy": res["test_accuracy"], "tta": serving.mode, "candidates": scored,
            "recorded": {k: v for k, v in res.items() if k.startswith("temperature")}, "machine": machine(),
            "command": "fewlabels pipeline --labels-per-class 4 --pretrain-iterations 100 --finetune-iterations 200 "
                       f"--distill-iterations 200 --seed {seed}"}


def collect() -> dict:
    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*-s*.json"))]
    record = {"bench": "calibration", "title": "Calibration without a validation split (4 labels per class)",
              "command": "nice -n 10 python bench/calibration.py", "machine": rows[-1]["machine"] if rows else machine(),
              "candidates": CANDIDATES, "rows": rows,
              "finished": [json.loads(p.read_text()) for p in sorted(FINISHED.glob("*.json"))]}
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    return record


def table(record: dict) -> str:
    """The BENCHMARKS.md section: per cell, each candidate's T and test ECE / NLL, mean ± std over seeds."""
    m = record["machine"]
    cells: dict[tuple, list[dict]] = {}
    for r in record["rows"]:
        cells.setdefault((r["dataset"], r["algorithm"], r["iterations"]), []).append(r)
    names = list(record["candidates"])
    lines = [f"## {record['title']}", "",
             f"`--val-per-class 0`, 4 labels per class, final EMA model served with its TTA; test ECE (15 bins) and NLL at "
             f"each candidate's T (the test set only scores). {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}.",
             "", f"Reproduce: `{record['command']}`", "",
             "Candidates: " + "; ".join(f"**{k}**: {v}" for k, v in record["candidates"].items()) + ".", "",
             "| cell | seeds | test acc % | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for (ds, algo, it), rs in sorted(cells.items()):
        acc = mean_std([r["test_accuracy"] for r in rs])
        row = [f"{ds} {algo} {it} it", str(len(rs)), f"{100 * acc[0]:.1f} ± {100 * acc[1]:.1f}"]
        for n in names:
            got = [r["candidates"][n] for r in rs if n in r["candidates"]]
            if not got:
                row.append("—")
                continue
            t, e, n = (mean_std([c[k] for c in got])[0] for k in ("temperature", "ece", "nll"))
            row.append(f"T {t:.2f}<br>ECE {e:.3f}<br>NLL {n:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    if record.get("finished"):
        from calibration_finished import finished_table

        lines += finished_table(record["finished"])
    return "\n".join(lines + notes_lines("calibration")) + "\n"


def score_finished(folders: list[Path]) -> None:
    """One row per finished run folder into FINISHED (named after the folder's last two parts), then the record."""
    import torch
    from calibration_finished import finished_row

    torch.set_num_threads(1)
    FINISHED.mkdir(parents=True, exist_ok=True)
    sources: dict = {}
    for folder in folders:
        path = FINISHED / f"{folder.parent.name}-{folder.name}.json"
        if path.exists() or not (folder / "results.json").exists():
            continue
        row = finished_row(folder, sources)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=1) + "\n")
        tmp.replace(path)
        print(f"{path.stem}: " + ", ".join(f"{k} T {v['temperature']:.2f} ECE {v['ece']:.3f}"
                                         for k, v in row["candidates"].items()), flush=True)
    collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=CELLS, help="dataset:algorithm:iterations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pipeline", metavar="FINAL_STAGE", help="score a finished pipeline's final stage folder instead "
                        "(with --seeds giving its one seed)")
    parser.add_argument("--finished", nargs="+", metavar="RUN_FOLDER", help="score finished runs of other benches instead "
                        "(calibration_finished.py); folders already scored are skipped")
    args = parser.parse_args()
    if args.finished:
        score_finished([Path(f) for f in args.finished])
        return
    if args.pipeline:
        path = RUNS / f"pipeline-s{args.seeds[0]}.json"
        RUNS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(pipeline_row(args.pipeline, args.seeds[0]), indent=1) + "\n")
        collect()
        return
    import torch

    torch.set_num_threads(1)
    RUNS.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for cell in args.cells:
            ds, algo, it = cell.split(":")
            path = RUNS / f"{ds}-{algo}-{it}-s{seed}.json"
            if path.exists():
                continue
            print(f"{cell} seed {seed} ...", flush=True)
            result = {**one_run(ds, algo, int(it), seed), "command": command()}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            tmp.replace(path)
            print("  " + ", ".join(f"{k} T {v['temperature']:.2f} ECE {v['ece']:.3f}" for k, v in result["candidates"].items()),
                  flush=True)
            collect()
    collect()


if __name__ == "__main__":
    main()
