"""The recipe under every method: each setting alone, then together, judged on the validation split (issue 29, item 3).

    nice -n 10 python bench/recipe.py                        # alone, then together, then the step costs
    nice -n 10 python bench/recipe.py --phase alone --seeds 0 1
    python bench/report.py                                   # BENCHMARKS.md

Supervised Fashion-MNIST with every label but 500 per class held out as the validation split (5,000 images: one
image is 0.02 points, the standard error of an accuracy near 90% ~0.4 points, and the settings are compared on the
*same* images). Every run trains the same number of steps, so a loaded machine changes the wall time, never the
figure; what a setting costs per step is measured separately, every setting in one process, interleaved, as a
ratio to today's recipe. A setting is adopted only where it gains on the validation split on every seed; the test
accuracy is reported beside it and decides nothing. One JSON per run under bench/results/recipe/ (a rerun skips
finished runs); bench/results/recipe.json collects them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine, notes_lines, pct_mean_std  # noqa: E402

RUNS = RESULTS / "recipe"
RECORD = RESULTS / "recipe.json"
DATA = "/usr/share/datasets/fashion-mnist"
ITERATIONS = 4000
VAL_PER_CLASS = 500
# name: the settings it changes from today's recipe (SGD-Nesterov lr 0.03, cosine, EMA 0.999, batch 64, `cnn`, fp32)
ALONE = {
    "today": {},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "whitening init": {"whiten_init": True},
    "BN momentum 0.3": {"bn_momentum": 0.3},
    "BN-bias lr x4": {"bn_bias_lr_scale": 4.0},
    "Adam": {"optimizer": "adam"},
    "AdamW": {"optimizer": "adamw"},
    "lookahead k=5": {"lookahead": 5},
    "bf16": {"precision": "bf16"},
}
# the wider networks, and the textbook convnet with the optimizer its tutorials train it with
MODELS = {"convnet": {"model": "convnet", "batch_size": 128}, "convnet + Adam": {"model": "convnet", "batch_size": 128,
          "optimizer": "adam"}, "cnn-wide": {"model": "cnn-wide"}}
ADOPT_MIN_GAIN = 0.002  # mean validation gain (fraction) that a setting needs, besides gaining on every seed


def config(overrides: dict, seed: int, iterations: int, out: str):
    from fewlabels.train import TrainConfig

    settings = {"dataset": "fashion-mnist", "data_dir": DATA, "algorithm": "supervised", "model": "cnn", "augment": "hand",
                "val_per_class": VAL_PER_CLASS, "seed": seed, "iterations": iterations, "eval_every": iterations,
                "checkpoint_every": iterations, "out": out, **overrides}
    return TrainConfig(**settings)


def one_run(overrides: dict, seed: int, iterations: int) -> dict:
    import torch

    from fewlabels.train.loop import Trainer
    from fewlabels.train.preparation import prepare

    scratch = tempfile.mkdtemp(prefix="recipe-")
    try:
        trainer = Trainer(prepare(config(overrides, seed, iterations, str(Path(scratch) / "run"))), progress=False)
        c0 = time.process_time()
        res = trainer.run()
        cpu_s = time.process_time() - c0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"overrides": overrides, "seed": seed, "iterations": res["iterations"], "val_accuracy": res.get("final_val_acc"),
            "test_accuracy": res["test_accuracy"], "test_accuracy_tta": res.get("test_accuracy_tta"),
            **{k: res.get(k) for k in ("temperature", "ece_before", "ece_after", "precision")},
            "train_time_s": res["train_time_s"], "wall_time_s": res["wall_time_s"], "run_cpu_s": round(cpu_s, 1),
            "torch_threads": torch.get_num_threads(), "machine": machine()}


def step_costs(settings: dict[str, dict], rounds: int = 3, steps: int = 20, warmup: int = 5) -> dict[str, float]:
    """CPU seconds per training step of each setting, medians of interleaved rounds in this one process."""
    from fewlabels.train.loop import Trainer
    from fewlabels.train.preparation import prepare

    scratch = tempfile.mkdtemp(prefix="recipe-cost-")
    try:
        trainers = {name: Trainer(prepare(config(o, 0, 10_000, str(Path(scratch) / f"r{i}"))), progress=False)
                    for i, (name, o) in enumerate(settings.items())}
        samples: dict[str, list[float]] = {name: [] for name in settings}
        for _ in range(rounds):
            for name, trainer in trainers.items():
                for k in range(warmup + steps):
                    c0 = time.process_time()
                    trainer.train_step({})
                    if k >= warmup:
                        samples[name].append(time.process_time() - c0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {name: statistics.median(s) for name, s in samples.items()}


def rows() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json")) if p.name != "costs.json"]


def gains(found: list[dict]) -> dict[str, list[float]]:
    """Per setting: its validation gain over today's recipe on each seed both ran."""
    today = {r["seed"]: r["val_accuracy"] for r in found if r["name"] == "today"}
    out: dict[str, list[float]] = {}
    for r in found:
        if r["name"] != "today" and r["seed"] in today and r["val_accuracy"] is not None:
            out.setdefault(r["name"], []).append(r["val_accuracy"] - today[r["seed"]])
    return out


def adopted(found: list[dict]) -> list[str]:
    """The settings (alone) that gained on the validation split on every seed, by at least ADOPT_MIN_GAIN on average.
    Precision is decided by its own rule (speed at equal accuracy), not here."""
    return [name for name, g in gains(found).items() if name in ALONE and name != "bf16" and len(g) >= 2
            and min(g) > 0 and statistics.fmean(g) >= ADOPT_MIN_GAIN]


def together(found: list[dict]) -> dict[str, dict]:
    """The adopted settings at once (two optimizers: the better one), on cnn and the wider models."""
    names = adopted(found)
    optimizers = [n for n in names if "optimizer" in ALONE[n]]
    if len(optimizers) > 1:
        g = gains(found)
        best = max(optimizers, key=lambda n: statistics.fmean(g[n]))
        names = [n for n in names if n not in optimizers or n == best]
    merged: dict = {}
    for name in names:
        merged.update(ALONE[name])
    out = {"together": merged} if names else {}
    for model, settings in MODELS.items():
        out[model] = dict(settings)
        if names:
            out[f"{model} + together"] = {**settings, **merged}
    return out


def run_phase(settings: dict[str, dict], seeds: list[int], iterations: int) -> None:
    for seed in seeds:
        for name, overrides in settings.items():
            path = RUNS / f"{name.replace(' ', '_').replace('=', '')}-s{seed}.json"
            if path.exists():
                continue
            print(f"{name} seed {seed} ...", flush=True)
            result = {"name": name, **one_run(overrides, seed, iterations), "command": command()}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            tmp.replace(path)
            print(f"  val {100 * result['val_accuracy']:.2f}%  test {100 * result['test_accuracy']:.2f}%", flush=True)
            collect()


def collect() -> dict:
    found = rows()
    costs_path = RUNS / "costs.json"
    record = {"bench": "recipe", "title": "The recipe under every method: each setting alone and together (validation)",
              "command": "nice -n 10 python bench/recipe.py", "iterations": ITERATIONS, "val_per_class": VAL_PER_CLASS,
              "machine": found[-1]["machine"] if found else machine(), "rows": found, "adopted": adopted(found),
              "costs": json.loads(costs_path.read_text()) if costs_path.exists() else None}
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    return record


def table(record: dict) -> str:
    m = record["machine"]
    by: dict[str, list[dict]] = {}
    for r in record["rows"]:
        by.setdefault(r["name"], []).append(r)
    g = gains(record["rows"])
    costs = (record.get("costs") or {}).get("cpu_s_per_step", {})
    base_cost = costs.get("today")
    lines = [f"## {record['title']}", "",
             f"Supervised Fashion-MNIST, every label but {record['val_per_class']} per class held out for validation, "
             f"{record['iterations']:,} steps each (batch 64; `convnet` 128), `--augment hand`, final EMA model. A setting "
             f"is adopted where it gains on the validation split on every seed and by >= {100 * ADOPT_MIN_GAIN:.1f} points "
             "on average; test accuracy is shown, never used to choose. Step cost: CPU seconds per step as a ratio to "
             f"today's recipe, all settings interleaved in one process. {m['cpu']}, {m['cores']} cores, torch "
             f"{m['torch']}, {m['date']}, a machine shared with other sessions (the step counts are fixed, so load "
             "changes no accuracy).", "", f"Reproduce: `{record['command']}`", "",
             "| setting | seeds | validation % | gain on validation (per seed) | test % | with flip TTA % | ECE before → after "
             "| step cost |", "|---|---|---|---|---|---|---|---|"]

    order = [n for n in ALONE if n in by] + sorted(n for n in by if n not in ALONE)
    for name in order:
        rs = by[name]
        gain = " / ".join(f"{100 * x:+.2f}" for x in g.get(name, [])) or "—"
        ece = " → ".join(f"{statistics.fmean(r[k] for r in rs if r.get(k) is not None):.3f}"
                         if any(r.get(k) is not None for r in rs) else "—" for k in ("ece_before", "ece_after"))
        cost = f"{costs[name] / base_cost:.2f}x" if base_cost and name in costs else "—"
        lines.append(f"| {name} | {len(rs)} | {pct_mean_std(rs, 'val_accuracy')} | {gain} | {pct_mean_std(rs, 'test_accuracy')} | "
                     f"{pct_mean_std(rs, 'test_accuracy_tta')} | {ece} | {cost} |")
    lines += ["", "Adopted on validation: " + (", ".join(record["adopted"]) or "none") + "."]
    return "\n".join(lines + notes_lines("recipe")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["alone", "together", "costs", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="+", help="run only these settings (by name)")
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    pick = (lambda d: {k: v for k, v in d.items() if k in args.only}) if args.only else (lambda d: d)
    if args.phase in ("alone", "all"):
        run_phase(pick(ALONE), args.seeds, args.iterations)
    if args.phase in ("together", "all"):
        run_phase(pick(together(rows())), args.seeds, args.iterations)
    if args.phase in ("costs", "all"):
        names = {**ALONE, **together(rows())}
        costs = step_costs({k: v for k, v in names.items() if "model" not in v})
        (RUNS / "costs.json").write_text(json.dumps({"cpu_s_per_step": costs, "machine": machine()}, indent=1) + "\n")
    print("adopted:", ", ".join(collect()["adopted"]) or "none")


if __name__ == "__main__":
    main()
