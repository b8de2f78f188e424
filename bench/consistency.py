"""Every algorithm side by side: same model, same budget, same labeled splits.

Settings: Fashion-MNIST with 4 and 25 labels per class, digits with 5 per class; each seed
is a different labeled split, shared by every method (scikit-learn's LabelSpreading and
SelfTrainingClassifier included). The final EMA model's test accuracy is reported; no
checkpoint or hyper-parameter is chosen on the test set (paper defaults throughout).

Runs go to a pool of single-threaded worker processes (``--jobs``), and every finished run
is written to the JSON at once, so an interrupted benchmark resumes where it stopped
(rows already present with the same budget are skipped). Regenerates BENCHMARKS.md.

    python bench/consistency.py                           # the published table
    python bench/consistency.py --settings digits5 --seeds 0 --iterations 50 --out /tmp/smoke.json
    python bench/consistency.py --settings digits5 --replace   # one setting again, its rows replaced
    python bench/consistency.py --settings fmnist4 --rescore-served   # served figures as this commit serves them
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONSISTENCY_SETTINGS as SETTINGS  # noqa: E402
from common import RESULTS, command, machine, served  # noqa: E402

SKLEARN = ("LabelSpreading (knn, k=7)", "SelfTraining (LogisticRegression)")
FAMILY = ("supervised", "pimodel", "pseudolabel", "meanteacher", "vat", "uda", "mixmatch", "remixmatch",
          "fixmatch", "flexmatch", "freematch", "softmatch")  # issue #4's algorithms

_SOURCES: dict = {}


def _source(name: str):
    from fewlabels import data

    if name not in _SOURCES:
        _SOURCES[name] = data.load(name)
    return _SOURCES[name]


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_network(task: dict) -> dict:
    import torch

    from fewlabels.train import TrainConfig, train
    from fewlabels.utils.memory import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    cpu_before = _cpu_seconds()
    algorithm, options = method_options(task["method"])
    cfg = TrainConfig(**task["config"], seed=task["seed"], algorithm=algorithm, options=options,
                      model=task["model"], iterations=task["iterations"], batch_size=task["batch_size"],
                      uratio=task["uratio"], eval_every=task["iterations"], checkpoint_every=task["iterations"],
                      out=f"{task['runs']}/{task['setting']}/{task['method']}-s{task['seed']}")
    res = train(cfg, source=_source(cfg.dataset), progress=False, overwrite=True)
    return {**_key(task), "test_accuracy": res["test_accuracy"], "wall_time_s": res["wall_time_s"],
            "cpu_time_s": round(_cpu_seconds() - cpu_before, 1),
            "train_time_s": res["train_time_s"], "iterations": res["iterations"],
            "iterations_per_s": res["iterations"] / max(res["train_time_s"], 1e-9),
            "mask_rate": res.get("final_mask_rate"), "pseudo_label_acc": res.get("final_pseudo_label_acc"),
            "per_class_accuracy": res["test"]["per_class_accuracy"], **served(res),
            "other_inference": {k.removeprefix("test_accuracy_"): v for k, v in res.items()
                                if k.startswith("test_accuracy_") and k != "test_accuracy_raw_model"}}


def method_options(method: str) -> tuple[str, dict]:
    """ "elr:lambda_elr=1" -> ("elr", {"lambda_elr": 1.0}): a bench row for a non-default hyper-parameter."""
    import yaml

    name, _, rest = method.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    return name, options


def run_sklearn(task: dict) -> dict:
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    from fewlabels import data

    dataset, lpc = task["config"]["dataset"], task["config"]["labels_per_class"]
    source = _source(dataset)

    def flat(x):
        return x.reshape(len(x), -1).numpy().astype(np.float32) / 255.0

    x, y_all = flat(source.train.x), source.train.y.numpy()
    split = data.split(source.train.y, labels_per_class=lpc, seed=task["seed"])
    y = np.full(len(x), -1, dtype=np.int64)
    y[split.labeled] = y_all[split.labeled]
    if task["method"] == SKLEARN[0]:
        est = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100, n_jobs=1)
    else:
        est = SelfTrainingClassifier(LogisticRegression(max_iter=300))
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LabelSpreading's divide warning for unreachable points, lbfgs iteration cap
        est.fit(x, y)
        acc = float((est.predict(flat(source.test.x)) == source.test.y.numpy()).mean())
    return {**_key(task), "test_accuracy": acc, "wall_time_s": round(time.time() - started, 1), "iterations": None}


def run(task: dict) -> dict | None:
    try:
        row = run_sklearn(task) if task["method"] in SKLEARN else run_network(task)
    except Exception as exc:  # one broken run must not take the others down; it is retried next time
        print(f"{task['setting']} seed {task['seed']} {task['method']}: FAILED ({type(exc).__name__}: {exc})", flush=True)
        return None
    print(f"{task['setting']} seed {task['seed']} {task['method']}: {row['test_accuracy']:.4f} "
          f"({row['wall_time_s']:.0f}s)", flush=True)
    return row


def _key(task: dict) -> dict:
    return {"setting": task["setting"], "method": task["method"], "seed": task["seed"]}


def measure_speed(methods: list[str], budget: dict, steps: int) -> dict[str, float]:
    """Training iterations per second of each method alone in this process (one thread, Fashion-MNIST 4/class).

    The accuracy runs share the machine with each other, so their own timings are not comparable;
    this times ``steps`` steps of each after two warm-up steps, one method at a time.
    """
    import time

    import torch

    from fewlabels.train import TrainConfig, prepare
    from fewlabels.train.loop import Trainer

    torch.set_num_threads(1)
    speed = {}
    for method in methods:
        cfg = TrainConfig(dataset="fashion-mnist", labels_per_class=4, algorithm=method, model=budget["model"],
                          iterations=steps + 2, batch_size=budget["batch_size"], uratio=budget["uratio"])
        trainer = Trainer(prepare(cfg, _source("fashion-mnist")), progress=False)
        tally: dict = {}
        for _ in range(2):
            trainer.train_step(tally)
        started = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(tally)
        speed[method] = steps / (time.perf_counter() - started)
        print(f"{method}: {speed[method]:.2f} it/s", flush=True)
    return speed


def main() -> None:
    from fewlabels import algorithms

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--algorithms", nargs="+", default=list(FAMILY), help="default: the consistency family")
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--uratio", type=int, default=3)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--runs", default="runs/bench-consistency")
    ap.add_argument("--out", default=str(RESULTS / "consistency.json"))
    ap.add_argument("--title", default="The consistency family side by side")
    ap.add_argument("--replace", action="store_true",
                    help="run the chosen settings x seeds x methods again, replacing their rows (a rerun at a newer commit)")
    ap.add_argument("--rescore-served", action="store_true",
                    help="recompute the chosen rows' served figures (temperature, ECE before -> after) as this commit "
                         "serves them, from their run folders' final checkpoints under --runs (no retraining)")
    ap.add_argument("--speed-steps", type=int, default=0,
                    help="only time N steps of each algorithm, one at a time, into the existing record")
    args = ap.parse_args()

    unknown = [a for a in args.algorithms if a not in algorithms.names()]
    if unknown:
        ap.error(f"unknown algorithm {unknown[0]!r}; choose from {', '.join(algorithms.names())}")
    methods = args.algorithms
    budget = {"iterations": args.iterations, "batch_size": args.batch_size, "uratio": args.uratio, "model": args.model}
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    previous = dict(record)
    if record.get("budget") != budget:
        if args.speed_steps:
            ap.error(f"--speed-steps adds to an existing record with the same budget; {out} has none")
        record = {"rows": []}
    record.update({
        "bench": "consistency",
        "notes_file": out.stem,
        "title": args.title,
        "command": command(),
        "budget": budget,
        "machine": machine(),
    })
    record["machine"]["torch_threads"] = 1
    record["machine"]["jobs"] = args.jobs
    if args.speed_steps:
        from report import write_benchmarks

        from fewlabels.utils.io import atomic_write_json

        record["command"] = previous.get("command", "python bench/consistency.py")  # the accuracy runs' command stays
        record["speed"] = {"steps": args.speed_steps, "command": command(),
                           "iterations_per_s": measure_speed(methods, budget, args.speed_steps)}
        atomic_write_json(out, record)
        if out.parent == RESULTS:
            write_benchmarks()
        return
    if args.rescore_served:
        rescore_served(record, previous, args, out)
        return
    tasks = []
    if args.replace:
        record["command"] = previous.get("command", record["command"])  # the table's command stays; the rerun is listed
        record["reruns"] = [*previous.get("reruns", []), command()]
        chosen = set(methods) | (set() if args.no_sklearn else set(SKLEARN))
        record["rows"] = [r for r in record["rows"] if not (r["setting"] in args.settings and r["seed"] in args.seeds
                                                            and r["method"] in chosen)]
    for setting in args.settings:
        dataset, lpc, _ = SETTINGS[setting]
        for seed in args.seeds:
            for method in methods + ([] if args.no_sklearn else list(SKLEARN)):
                tasks.append({"setting": setting, "seed": seed, "method": method, "runs": args.runs,
                              "config": {"dataset": dataset, "labels_per_class": lpc}, **budget})
    run_tasks(tasks, record, out, args.jobs)


def rescore_served(record: dict, previous: dict, args: argparse.Namespace, out: Path) -> None:
    """The chosen rows' served figures as this commit serves them, from each run's restored final checkpoint.

    ``calibration_figures`` is what a run calls at its end: on the restored EMA model it gives what the run would
    have recorded at this commit (the pool estimate reads the same seeded pool images and views), so rows run
    before a change of what is served (which methods get the pool T; ECE of runs served without one) are brought
    up to date without retraining. Each rescored row says so (``served_rescored``); a row whose folder is gone, or
    holds another run (its test accuracy differs), keeps its figures.
    """
    import torch
    from calibration_finished import restored
    from report import write_benchmarks

    from fewlabels.evaluate.calibration import calibration_figures
    from fewlabels.utils.io import atomic_write_json

    torch.set_num_threads(1)
    record.update({k: previous[k] for k in ("command", "machine", "reruns") if k in previous})
    sources: dict = {}
    for row in record["rows"]:
        folder = Path(args.runs) / row["setting"] / f"{row['method']}-s{row['seed']}"
        if (row["setting"] not in args.settings or row["seed"] not in args.seeds or row["method"] not in args.algorithms
                or row.get("iterations") is None or not (folder / "results.json").exists()):
            continue
        trainer, res = restored(folder, sources)
        if res["test_accuracy"] != row["test_accuracy"]:
            print(f"{folder}: another run than the row's ({res['test_accuracy']} != {row['test_accuracy']}); kept")
            continue
        for key in ("temperature", "temperature_fitted_on", "ece_before", "ece_after"):  # replaced whole; TTA's stay
            row.pop(key, None)
        row.update({**served(calibration_figures(trainer)), "served_rescored": command()})
        print(f"{folder}: ECE {row['ece_before']:.3f} -> {row['ece_after']:.3f}", flush=True)
    atomic_write_json(out, record)
    if out.parent == RESULTS:
        write_benchmarks()


def run_tasks(tasks: list[dict], record: dict, out: Path, jobs: int) -> None:
    """Run what ``record`` lacks in a pool of ``jobs`` processes, saving the record after every run."""
    from report import write_benchmarks

    from fewlabels.utils.io import atomic_write_json

    done = {(r["setting"], r["method"], r["seed"]) for r in record["rows"]}
    todo = [t for t in tasks if (t["setting"], t["method"], t["seed"]) not in done]
    print(f"{len(todo)} runs to do ({len(done)} already in {out})", flush=True)
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=8) as pool:
        for row in pool.imap_unordered(run, todo):
            if row is None:
                continue
            record["rows"].append(row)
            atomic_write_json(out, record)
            if out.parent == RESULTS:
                write_benchmarks()


if __name__ == "__main__":
    main()
