"""The ceiling: supervised training with every Fashion-MNIST label at fixed CPU budgets, per model and precision.

    nice -n 10 python bench/ceiling.py                                   # the full grid (3 budgets x 3 seeds x rows)
    nice -n 10 python bench/ceiling.py --budgets 120 --seeds 0 --rows cnn:fp32 cnn:bf16 convnet:fp32
    python bench/report.py                                               # BENCHMARKS.md

Every few-label row is read against this number. Each run trains ``fewlabels``' supervised recipe (SGD-Nesterov,
cosine, EMA, ``--augment hand``: pad-and-crop + flip) for as many steps as fit the budget: a probe of the same
run times its steps first (the Trainer counts steps, not seconds; its cosine schedule needs the count). 100 labels
per class are held out as the validation split, on which the temperature is fitted. The final EMA model's test
accuracy is reported plain and with flip test-time augmentation. One JSON per run under bench/results/ceiling/
(a rerun skips finished runs); bench/results/ceiling.json collects them, with the precision micro-benchmark
(bench/precision.py) and an accuracy-against-CPU-seconds plot (bench/results/ceiling.png).

The ``convnet`` rows are the textbook network (4 conv + BN, dropout, dense 64) at batch 128, with the library's SGD
recipe and (``convnet:bf16:adam``) with the tutorials' Adam.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine, mean_cell, notes_lines, pct_mean_std  # noqa: E402

RUNS = RESULTS / "ceiling"
RECORD = RESULTS / "ceiling.json"
PLOT = RESULTS / "ceiling.png"
DATA = "/usr/share/datasets/fashion-mnist"
BATCH = {"convnet": 128}  # the textbook row's batch; the small CNNs train at the library's 64
# model:precision[:optimizer] (SGD-Nesterov unless named; Adam at its own default lr 1e-3)
ROWS = ["cnn:fp32", "cnn:bf16", "cnn-wide:fp32", "cnn-wide:bf16", "convnet:fp32", "convnet:bf16", "convnet:bf16:adam"]
PROBE_STEPS, PROBE_WARMUP = 30, 5
THREADS = 1  # the grid's: one thread per run, two runs side by side on a 2-core machine


def config(model: str, precision: str, seed: int, iterations: int, optimizer: str = "sgd"):
    from fewlabels.train import TrainConfig

    return TrainConfig(dataset="fashion-mnist", data_dir=DATA, algorithm="supervised", model=model, precision=precision,
                       optimizer=optimizer, augment="hand", val_per_class=100, seed=seed, batch_size=BATCH.get(model, 64),
                       iterations=iterations, eval_every=iterations, checkpoint_every=iterations)


def parse_row(row: str) -> tuple[str, str, str]:
    """"convnet:bf16:adam" -> (model, precision, optimizer); the optimizer defaults to sgd."""
    model, precision, *rest = row.split(":")
    return model, precision, rest[0] if rest else "sgd"


def row_key(r: dict) -> tuple[str, str, str, int]:
    return r["model"], r["precision"], r.get("optimizer", "sgd"), r["torch_threads"]


def probe_step_s(model: str, precision: str, seed: int, optimizer: str = "sgd") -> tuple[float, float]:
    """(CPU seconds per step / threads, wall seconds per step), medians over a throw-away Trainer's steps.

    The budget counts CPU time, not wall time: on a machine shared with other processes the wall clock of a step
    grows with their load, its CPU time far less; CPU seconds / threads is the wall time the step takes on an idle
    machine of this kind.
    """
    import torch

    from fewlabels.train.loop import Trainer
    from fewlabels.train.preparation import prepare

    trainer = Trainer(prepare(config(model, precision, seed, 10_000, optimizer)), progress=False)
    cpu, wall = [], []
    for _ in range(PROBE_STEPS):
        c0, t0 = time.process_time(), time.perf_counter()
        trainer.train_step({})
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return statistics.median(cpu[PROBE_WARMUP:]) / torch.get_num_threads(), statistics.median(wall[PROBE_WARMUP:])


def one_run(model: str, precision: str, budget_s: float, seed: int, optimizer: str = "sgd") -> dict:
    import torch

    from fewlabels.train.loop import Trainer
    from fewlabels.train.preparation import prepare

    threads = torch.get_num_threads()
    step_cpu_s, step_wall_s = probe_step_s(model, precision, seed, optimizer)
    iterations = max(50, int(budget_s / step_cpu_s))
    trainer = Trainer(prepare(config(model, precision, seed, iterations, optimizer)), progress=False)
    c0 = time.process_time()
    res = trainer.run()
    run_cpu_s = (time.process_time() - c0) / threads  # training, the one evaluation and the results record
    test = trainer.p.source.test
    t0 = time.perf_counter()
    trainer.predict(trainer.ema.module, test.x)
    predict_s = time.perf_counter() - t0
    batch = trainer.cfg.batch_size
    return {"model": model, "precision": res["precision"], "optimizer": optimizer, "budget_s": budget_s, "seed": seed, "batch_size": batch,
            "probe_step_cpu_s": round(step_cpu_s, 4), "probe_step_wall_s": round(step_wall_s, 4),
            "iterations": res["iterations"], "run_cpu_s": round(run_cpu_s, 1), "train_time_s": res["train_time_s"],
            "wall_time_s": res["wall_time_s"], "train_images_per_s": round(res["iterations"] * batch / res["train_time_s"], 1),
            "train_images_per_cpu_s": round(res["iterations"] * batch / run_cpu_s, 1),
            "predict_images_per_s": round(len(test.x) / predict_s, 1),
            "predict_tta_images_per_s": round(len(test.x) / res["tta_predict_s"], 1) if res.get("tta_predict_s") else None,
            "val_accuracy": res.get("final_val_acc"),
            "test_accuracy": res["test_accuracy"], "test_accuracy_tta": res.get("test_accuracy_tta"), "tta": res.get("tta"),
            **{k: res.get(k) for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")},
            "parameters": sum(p.numel() for p in trainer.model.parameters()), "torch_threads": threads,
            "machine": machine()}


def collect() -> dict:
    """bench/results/ceiling.json from every finished run (and the micro-benchmark), and the plot."""
    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*-s*.json"))]
    micro = RUNS / "precision-microbench.json"
    record = {"bench": "ceiling", "title": "The ceiling: supervised Fashion-MNIST, every label, fixed CPU budgets",
              "command": "nice -n 10 python bench/ceiling.py", "machine": rows[-1]["machine"] if rows else machine(),
              "rows": rows, "grid": {"budgets_s": [120, 300, 900], "seeds": [0, 1, 2], "rows": ROWS, "threads": THREADS},
              "microbench": json.loads(micro.read_text()) if micro.exists() else None}
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    if rows:
        plot(rows)
    return record


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({row_key(r) for r in rows}):
        mine = sorted((r for r in rows if row_key(r) == key), key=lambda r: r["run_cpu_s"])
        label = " ".join(key[:2] if key[2] == "sgd" else key[:3]) + f", {key[3]} thread{'s' if key[3] > 1 else ''}"
        ax.plot([r["run_cpu_s"] for r in mine], [100 * r["test_accuracy"] for r in mine], "o-", label=label)
    ax.set_xlabel("CPU seconds / threads (training + final evaluation)")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Fashion-MNIST, every label, final EMA model")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


def missing(record: dict) -> list[str]:
    have = {(*row_key(r), int(r["budget_s"]), r["seed"]) for r in record["rows"]}
    grid = record["grid"]
    return [f"{row} {b}s s{s}" for row in grid["rows"] for b in grid["budgets_s"] for s in grid["seeds"]
            if (*parse_row(row), grid.get("threads", 2), b, s) not in have]


def table(record: dict) -> str:
    """The BENCHMARKS.md section: per model, precision and budget, mean ± std over the seeds that ran."""
    m = record["machine"]
    lines = [f"## {record['title']}", "",
             f"`fewlabels` supervised recipe (SGD-Nesterov, cosine, EMA, pad-and-crop + flip), 59,000 labels, 100 per "
             f"class held out for the temperature; each run's step count fits the budget (CPU seconds / threads, the wall time "
             f"of an idle machine) from a probe of its step's CPU time; under load a step costs more CPU than the probe saw "
             f"(spinning threads), so *CPU s used* is the figure to read. {m['cpu']}, "
             f"{m['cores']} cores, torch {m['torch']}, {m['date']}, **a machine shared with other sessions**: images/s "
             "are loaded figures, compare them only as ratios within a row set run together. The `convnet` rows are the "
             "textbook network at batch 128, with the same SGD recipe or with Adam (lr 1e-3).", "",
             f"Reproduce: `{record['command']}`", "", "![accuracy against CPU seconds](bench/results/ceiling.png)", "",
             "| model | precision | optimizer | threads | budget (CPU s, planned) | seeds | steps | CPU s used | "
             "validation % | test accuracy % | with flip TTA % | "
             "train img / CPU s | predict img/s | T | ECE before → after |", "|---" * 15 + "|"]
    groups: dict[tuple, list[dict]] = {}
    for r in record["rows"]:
        groups.setdefault((*row_key(r), int(r["budget_s"])), []).append(r)

    for (model, precision, optimizer, threads, budget), rs in sorted(groups.items(), key=lambda kv: (-kv[0][3], kv[0])):
        ece = f"{mean_cell(rs, 'ece_before', '.3f')} → {mean_cell(rs, 'ece_after', '.3f')}"
        lines.append(f"| {model} | {precision} | {optimizer} | {threads} | {budget} | {len(rs)} | {mean_cell(rs, 'iterations', ',.0f')} | "
                     f"{mean_cell(rs, 'run_cpu_s', ',.0f')} | {pct_mean_std(rs, 'val_accuracy')} | {pct_mean_std(rs, 'test_accuracy')} "
                     f"| {pct_mean_std(rs, 'test_accuracy_tta')} | {mean_cell(rs, 'train_images_per_cpu_s', ',.0f')} | "
                     f"{mean_cell(rs, 'predict_images_per_s', ',.0f')} | {mean_cell(rs, 'temperature', '.2f')} | {ece} |")
    gaps = missing(record)
    if gaps:
        by_row: dict[str, list[str]] = {}
        for gap in gaps:
            row, rest = gap.split(" ", 1)
            by_row.setdefault(row, []).append(rest)
        lines += ["", f"Not yet run ({len(gaps)} of the grid's {len(gaps) + len(record['rows'])} runs): "
                  + "; ".join(f"{row} {', '.join(rest)}" for row, rest in by_row.items()) + "."]
    micro = record.get("microbench")
    if micro:
        mm = micro["machine"]
        lines += ["", f"Training-step speed by precision (`python bench/precision.py`, batch {micro['rows'][0]['batch']}, "
                      f"{mm['cpu']}, CPU capability {mm['cpu_capability']}, bf16 flags: "
                      f"{', '.join(mm['bf16_flags']) or 'none'}; ratios to eager fp32 in one process, loaded machine):", "",
                  "| model | " + " | ".join(micro["rows"][0]["ratio_to_fp32"]) + " |",
                  "|---|" + "---|" * len(micro["rows"][0]["ratio_to_fp32"])]
        for r in micro["rows"]:
            lines.append(f"| {r['model']} | " + " | ".join(f"{v:.2f}x" for v in r["ratio_to_fp32"].values()) + " |")
    return "\n".join(lines + notes_lines("ceiling")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[120, 300, 900], help="training seconds per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=ROWS, help="model:precision[:optimizer]")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads per run (1: CPU time is what a "
                        "step costs even on a loaded machine; 2 threads spin while they wait for each other)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    RUNS.mkdir(parents=True, exist_ok=True)
    for budget in args.budgets:
        for seed in args.seeds:
            for row in args.rows:
                model, precision, optimizer = parse_row(row)
                tag = f"{model}-{precision}" + (f"-{optimizer}" if optimizer != "sgd" else "") + \
                    (f"-t{args.threads}" if args.threads != 2 else "")  # 2 threads: the first round's files
                path = RUNS / f"{tag}-{int(budget)}s-s{seed}.json"
                if path.exists():
                    continue
                print(f"{row} {int(budget)}s seed {seed} ...", flush=True)
                result = {**one_run(model, precision, budget, seed, optimizer), "command": command()}
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, indent=1) + "\n")
                tmp.replace(path)
                print(f"  {result['iterations']} steps, test {100 * result['test_accuracy']:.2f}%"
                      f" (TTA {result['test_accuracy_tta']})", flush=True)
                collect()
    print("missing:", ", ".join(missing(collect())) or "none")


if __name__ == "__main__":
    main()
