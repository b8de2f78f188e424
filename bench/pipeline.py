"""The few-label pipeline (pretrain, fine-tune, distil) on Fashion-MNIST with 4 labels per class, stage by stage.

    python bench/pipeline.py --seeds 0 --val-per-class 20            # runs the default pipeline per seed
    python bench/pipeline.py --collect runs/bench-pipeline/fm-s0      # records a pipeline folder already run
    python bench/pipeline.py --seeds 0 --budget-scale 3                # the 45-minute budget: every stage 3x as long
    python bench/pipeline.py --seeds 0,1,2 --baseline fixmatch --iterations 3000   # from scratch, same splits
    python bench/pipeline.py --seeds 0,1,2 --finetune fixmatch --option distribution_alignment=true --iterations 1200 \
        --encoder 'runs/bench-pipeline/fashion-mnist-4pc-s{seed}/1-pretrain'   # a stage-2 variant, same encoders
    python bench/pipeline.py --seeds 0,1,2 --linear-probe \
        --encoder 'runs/bench-pipeline/fashion-mnist-4pc-s{seed}/1-pretrain'   # pretraining + a linear probe, same splits
    python bench/pipeline.py --seeds 0,1,2 --distill-into cnn-small --iterations 1200 \
        --teacher 'runs/bench-pipeline/fashion-mnist-4pc-s{seed}/2-finetune'   # a stage-3 variant, same teachers
    python bench/report.py

Every stage's final EMA test accuracy, validation accuracy (the split the defaults are judged
on), iterations and wall time; one file per pipeline under bench/results/pipeline/, gathered in
bench/results/pipeline.json. Nothing is chosen on the test set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, notes_lines, served  # noqa: E402

RUNS = RESULTS / "pipeline"
BASELINE_ITERATIONS = 3000  # the default pipeline's steps: a from-scratch run of as many is its equal-time baseline


def record_of(folder: Path) -> dict:
    from fewlabels.train.pipeline import read_manifest

    manifest = read_manifest(folder)
    stages = []
    for s in manifest["stages"]:
        res = json.loads((Path(s["config"]["out"]) / "results.json").read_text())
        stages.append(stage_record(s["name"] + budget_label(s["name"], res["iterations"]), res))
    common = manifest["common"]
    return {"dataset": common.get("dataset"), "labels_per_class": common.get("labels_per_class"),
            "seed": common.get("seed", 0), "val_per_class": common.get("val_per_class", 0), "stages": stages,
            "total_wall_time_s": sum(s["wall_time_s"] for s in stages)}


def stage_record(name: str, res: dict) -> dict:
    per_class = res.get("test", {}).get("per_class_accuracy") or {}
    worst = min(per_class, key=per_class.get) if per_class else None
    record = {"stage": name, "algorithm": res["algorithm"], "model": res["model"], "iterations": res["iterations"],
              "wall_time_s": res["wall_time_s"], "test_accuracy": res["test_accuracy"],
              "val_accuracy": res.get("final_val_acc"), "knn_accuracy": res.get("final_knn_acc"),
              "worst_class": worst, "worst_class_accuracy": per_class.get(worst), **served(res)}
    for key in ("teacher_acc", "teacher_images_per_s", "student_images_per_s"):  # distillation's measurements
        if f"final_{key}" in res:
            record[key] = res[f"final_{key}"]
    return record


def run_once(out: Path, config: dict) -> dict:
    """Train into `out` unless a finished run is there already; its results (a rerun resumes a benchmark)."""
    from fewlabels.train import TrainConfig, train

    if not (out / "results.json").exists():
        train(TrainConfig(**config, out=str(out)), progress=False, overwrite=True)
    res = json.loads((out / "results.json").read_text())
    if res["iterations"] != config["iterations"]:
        raise SystemExit(f"{out} holds a run of {res['iterations']} iterations, not {config['iterations']}: "
                         "choose another --runs folder.")
    return res


def baseline(dataset: str, labels_per_class: int, val_per_class: int, seed: int, algorithm: str, iterations: int,
             runs: Path) -> dict:
    """One semi-supervised run from scratch on the pipeline's split (same seed, labels and validation hold-out)."""
    res = run_once(runs / f"{dataset}-{labels_per_class}pc-{algorithm}-{iterations}-s{seed}",
                   dict(dataset=dataset, labels_per_class=labels_per_class, val_per_class=val_per_class, seed=seed,
                        algorithm=algorithm, iterations=iterations))
    budget = budget_suffix(iterations, BASELINE_ITERATIONS)
    return {"dataset": dataset, "labels_per_class": labels_per_class, "seed": seed, "val_per_class": val_per_class,
            "baseline": True, "stages": [stage_record("from scratch" + budget, res)], "total_wall_time_s": res["wall_time_s"]}


def stage_variant(dataset: str, labels_per_class: int, val_per_class: int, seed: int, stage: str, settings: dict,
                  runs: Path) -> dict:
    """One stage alone with other settings, from the seed's existing earlier stage (its encoder or its teacher).

    What composes best is measured this way without rerunning the stages before it.
    """
    label = variant_label(settings) + budget_label(stage, settings["iterations"])
    res = run_once(runs / f"{dataset}-{labels_per_class}pc-{stage}-{label}-s{seed}",
                   dict(dataset=dataset, labels_per_class=labels_per_class, val_per_class=val_per_class, seed=seed,
                        **settings))
    return {"dataset": dataset, "labels_per_class": labels_per_class, "seed": seed, "val_per_class": val_per_class,
            "variant": f"{stage}-{label}", "stages": [stage_record(f"{stage}, {label}", res)],
            "total_wall_time_s": res["wall_time_s"]}


def linear_probe_variant(dataset: str, labels_per_class: int, val_per_class: int, seed: int, encoder: str) -> dict:
    """Pretraining + a linear probe: logistic regression on the seed's stage-1 features of its own labeled split.

    The split is drawn exactly as the pipeline drew it (same seed, same validation hold-out), so the row
    differs from the pipeline's only in what follows stage 1.
    """
    import time

    import torch

    from fewlabels import data as data_mod
    from fewlabels.api import load
    from fewlabels.evaluate.metrics import accuracy, per_class_accuracy
    from fewlabels.evaluate.probe import embed, fit_predict

    started = time.perf_counter()
    trained = load(encoder)
    source = data_mod.load(dataset)
    train, test = source.train, source.test
    split = data_mod.split(train.y, labels_per_class, None, val_per_class, seed, train.classes)
    labeled, val = (torch.as_tensor(i, dtype=torch.int64) for i in (split.labeled, split.validation))
    pool_f, test_f = embed(trained.model, train.x), embed(trained.model, test.x)
    k = len(train.classes)
    predicted = fit_predict("linear", pool_f[labeled], train.y[labeled], torch.cat([test_f, pool_f[val]]), k)
    test_pred, val_pred = predicted[:len(test_f)], predicted[len(test_f):]
    per_class = dict(zip(train.classes, per_class_accuracy(test.y, test_pred, k)))
    worst = min(per_class, key=per_class.get)
    res = trained.results
    stage = {"stage": "1-pretrain + linear probe", "algorithm": res["algorithm"], "model": res["model"],
             "iterations": res["iterations"], "wall_time_s": res["wall_time_s"] + time.perf_counter() - started,
             "test_accuracy": accuracy(test.y, test_pred),
             "val_accuracy": accuracy(train.y[val], val_pred) if len(val) else None, "knn_accuracy": None,
             "worst_class": worst, "worst_class_accuracy": per_class[worst]}
    return {"dataset": dataset, "labels_per_class": labels_per_class, "seed": seed, "val_per_class": val_per_class,
            "variant": "1-pretrain-linear-probe", "stages": [stage], "total_wall_time_s": stage["wall_time_s"]}


def budget_suffix(iterations: int, default: int | None) -> str:
    """'+Nit' when a run had another budget than its default: a row of its own, not mixed into the default's."""
    return "" if default is None or iterations == default else f"+{iterations}it"


def default_iterations(stage: str) -> int | None:
    """The default pipeline's budget for ``stage`` (None for a stage of another name)."""
    from fewlabels.train.pipeline import DEFAULT_STAGES

    return next((s.settings["iterations"] for s in DEFAULT_STAGES if s.name == stage), None)


def budget_label(stage: str, iterations: int) -> str:
    return budget_suffix(iterations, default_iterations(stage))


def scaled_stages(scale: float) -> dict:
    """Every stage's default iterations times ``scale`` (a 45-minute pipeline is the 15-minute one at 3x)."""
    from fewlabels.train.pipeline import STAGE_KEYS

    return {key: {"iterations": round(scale * default_iterations(name))} for key, name in STAGE_KEYS.items()}


def run_or_resume(common: dict, out: Path, scale: float) -> None:
    """Run the pipeline into ``out``, or continue it there: a killed benchmark picks up where it stopped."""
    from fewlabels.train.pipeline import MANIFEST, default_stages, read_manifest, resume_pipeline, run_pipeline

    if not (out / MANIFEST).exists():
        run_pipeline(common, out, default_stages(scaled_stages(scale)), progress=False, overwrite=True)
    elif read_manifest(out).get("final_stage") is None:
        resume_pipeline(out, progress=False)


def variant_label(settings: dict) -> str:
    """algorithm[+model][+option=value...]: the teacher's and the encoder's paths are the seed's, not the variant's."""
    options = {k: v for k, v in settings.get("options", {}).items() if k != "teacher"}
    extra = {k: settings[k] for k in ("backbone_lr_scale", "init_head") if k in settings}
    parts = [settings["algorithm"], *([settings["model"]] if "model" in settings else []),
             *(f"{k}={v}" for k, v in sorted({**options, **extra}.items()))]
    return "+".join(parts)


def collect() -> None:
    from fewlabels.utils.io import atomic_write_json

    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    atomic_write_json(RESULTS / "pipeline.json", {"bench": "pipeline", "title": "The pipeline, stage by stage",
                                                  "machine": machine(), "rows": rows,
                                                  "command": COMMAND})


COMMAND = ("python bench/pipeline.py --seeds 0,1,2 --val-per-class 20 [--labels-per-class 25] && python bench/pipeline.py "
           "--seeds 0,1,2 --baseline fixmatch --iterations 3000 [--labels-per-class 25]  (45-minute budget: --budget-scale 3, "
           "baselines --iterations 9000; other stage-1 methods: fewlabels "
           "pipeline --pretrain-algorithm NAME --val-per-class 20 --out DIR, then python bench/pipeline.py --collect DIR; "
           "from the seeds' earlier stages: --linear-probe --encoder TEMPLATE, --finetune ALGORITHM --encoder TEMPLATE, "
           "--distill-into MODEL --teacher TEMPLATE; digits: --dataset digits --labels-per-class 5 --val-per-class 10)")


def table(record: dict) -> str:
    """The BENCHMARKS.md section: every stage of every run, means over seeds, and distillation's teacher vs student."""
    import statistics

    m = record["machine"]
    lines = [f"## {record['title']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}; one process per run, sharing "
             "the machine with other work (wall times are upper bounds). Accuracies are the final EMA model's; the "
             "validation split (held out of the labeled pool) is what settings are judged on. *from scratch* rows "
             "train on the same split (seed, labels, validation hold-out) without the earlier stages.", "",
             f"Reproduce: `{record['command']}`", "",
             "| dataset | labels/class | seed | stage | algorithm | iterations | wall time (min) | test acc % | val acc % "
             "| kNN % | worst class % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        for s in r["stages"]:
            pct = [f"{100 * s[k]:.2f}" if isinstance(s.get(k), (int, float)) else "—"
                   for k in ("test_accuracy", "val_accuracy", "knn_accuracy")]
            worst = (f"{100 * s['worst_class_accuracy']:.1f} ({s['worst_class']})"
                     if isinstance(s.get("worst_class_accuracy"), (int, float)) else "—")
            lines.append(f"| {r['dataset']} | {r['labels_per_class']} | {r['seed']} | {s['stage']} | {s['algorithm']} | "
                         f"{s['iterations']} | {s['wall_time_s'] / 60:.1f} | " + " | ".join(pct) + f" | {worst} |")
    # mean over seeds per (dataset, labels, kind, stage): the pipeline's default (simclr) stages and the baselines
    groups: dict[tuple, list[dict]] = {}
    for r in record["rows"]:
        if not (r.get("baseline") or r.get("variant")) and r["stages"][0]["algorithm"] != "simclr":
            continue
        for s in r["stages"]:
            groups.setdefault((r["dataset"], r["labels_per_class"], s["stage"], s["algorithm"]), []).append(s)
    if any(len(v) > 1 for v in groups.values()):
        lines += ["", "Mean ± std over seeds (the default pipeline, the from-scratch runs and the stage-2 variants "
                  "started from the same stage-1 encoders):", "",
                  "| dataset | labels/class | stage | algorithm | seeds | val acc % | test acc % | worst class % | wall time (min) |",
                  "|---|---|---|---|---|---|---|---|---|"]

        def ms(values: list[float]) -> str:
            sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else " (one seed)"
            return f"{statistics.mean(values):.2f}{sd}"

        for (d, lpc, stage, algo), ss in groups.items():
            worst = [100 * s["worst_class_accuracy"] for s in ss if isinstance(s.get("worst_class_accuracy"), (int, float))]
            val = [100 * s["val_accuracy"] for s in ss if isinstance(s.get("val_accuracy"), (int, float))]
            lines.append(f"| {d} | {lpc} | {stage} | {algo} | {len(ss)} | {ms(val) if val else '—'} | "
                         f"{ms([100 * s['test_accuracy'] for s in ss])} | "
                         f"{ms(worst) if worst else '—'} | {statistics.mean(s['wall_time_s'] for s in ss) / 60:.1f} |")
    distilled = [(r, s) for r in record["rows"] for s in r["stages"] if isinstance(s.get("student_images_per_s"), (int, float))]
    if distilled:
        lines += ["", "Distillation, teacher against student (prediction speed measured in the same run, one thread):", "",
                  "| dataset | labels/class | seed | stage | student | teacher test % | student test % | difference (points) | "
                  "teacher images/s | student images/s | student speed-up |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r, s in distilled:
            teacher = s.get("teacher_acc")
            diff = f"{100 * (s['test_accuracy'] - teacher):+.2f}" if isinstance(teacher, (int, float)) else "—"
            teacher_cell = f"{100 * teacher:.2f}" if isinstance(teacher, (int, float)) else "—"
            lines.append(f"| {r['dataset']} | {r['labels_per_class']} | {r['seed']} | {s['stage']} | {s['model']} | "
                         f"{teacher_cell} | {100 * s['test_accuracy']:.2f} | {diff} | "
                         f"{s['teacher_images_per_s']:,.0f} | {s['student_images_per_s']:,.0f} | "
                         f"{s['student_images_per_s'] / s['teacher_images_per_s']:.1f}x |")
    lines += notes_lines("pipeline")
    return "\n".join(lines) + "\n"


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """The split a seed's pipeline draws (its labels and validation hold-out), shared by the scripts that revisit it."""
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--labels-per-class", type=int, default=4)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--seeds", default="0")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p)
    p.add_argument("--runs", default="runs/bench-pipeline")
    p.add_argument("--collect", metavar="DIR", help="record a pipeline folder that has already run")
    p.add_argument("--baseline", metavar="ALGORITHM", help="instead of the pipeline, this algorithm from scratch")
    p.add_argument("--iterations", type=int, default=BASELINE_ITERATIONS, help="the baseline's (or the stage-2 variant's) iterations")
    p.add_argument("--finetune", metavar="ALGORITHM", help="a stage-2 variant from each seed's stage-1 --encoder")
    p.add_argument("--encoder", metavar="TEMPLATE", help="the stage-1 folder per seed, with {seed} in it")
    p.add_argument("--linear-probe", action="store_true",
                   help="pretraining + a linear probe: logistic regression on each seed's --encoder features")
    p.add_argument("--backbone-lr-scale", type=float, help="the stage-2 variant's backbone learning-rate scale")
    p.add_argument("--init-head", action="store_true", help="the stage-2 variant starts from stage 1's probe head too")
    p.add_argument("--distill-into", metavar="MODEL", help="a stage-3 variant: this student from each seed's --teacher")
    p.add_argument("--teacher", metavar="TEMPLATE", help="the stage-2 folder per seed, with {seed} in it")
    p.add_argument("--budget-scale", type=float, default=1.0, metavar="X",
                   help="the pipeline with every stage's default iterations times X (3: the 45-minute budget)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="the variant's options")
    args = p.parse_args()
    from fewlabels.utils.io import atomic_write_json

    RUNS.mkdir(parents=True, exist_ok=True)
    if (args.finetune or args.linear_probe) and not args.encoder or args.distill_into and not args.teacher:
        p.error("--finetune and --linear-probe need --encoder, --distill-into needs --teacher (folders per seed, "
                "with {seed} in them)")
    if args.linear_probe:
        for seed in (int(s) for s in args.seeds.split(",")):
            rec = linear_probe_variant(args.dataset, args.labels_per_class, args.val_per_class, seed,
                                       args.encoder.format(seed=seed))
            atomic_write_json(RUNS / f"{args.dataset}-{args.labels_per_class}pc-{rec['variant']}-s{seed}.json", rec)
        collect()
        return
    if args.finetune or args.distill_into:
        import torch

        from fewlabels.commands.common import parse_assignment

        torch.set_num_threads(1)
        options = dict(parse_assignment(o, "--option") for o in args.option)
        for seed in (int(s) for s in args.seeds.split(",")):
            if args.finetune:
                stage = "2-finetune"
                settings = {"algorithm": args.finetune, "options": options, "init": args.encoder.format(seed=seed)}
                if args.backbone_lr_scale is not None:
                    settings["backbone_lr_scale"] = args.backbone_lr_scale
                if args.init_head:
                    settings["init_head"] = True
            else:
                stage = "3-distill"
                settings = {"algorithm": "distill", "model": args.distill_into,
                            "options": {**options, "teacher": args.teacher.format(seed=seed)}}
            rec = stage_variant(args.dataset, args.labels_per_class, args.val_per_class, seed, stage,
                                {**settings, "iterations": args.iterations}, Path(args.runs))
            atomic_write_json(RUNS / f"{args.dataset}-{args.labels_per_class}pc-{rec['variant']}-s{seed}.json", rec)
        collect()
        return
    if args.baseline:
        import torch

        torch.set_num_threads(1)
        for seed in (int(s) for s in args.seeds.split(",")):
            rec = baseline(args.dataset, args.labels_per_class, args.val_per_class, seed, args.baseline,
                           args.iterations, Path(args.runs))
            budget = rec["stages"][0]["stage"].removeprefix("from scratch")
            atomic_write_json(RUNS / f"{args.dataset}-{args.labels_per_class}pc-scratch-{args.baseline}{budget}-s{seed}.json",
                              rec)
        collect()
        return
    folders = [Path(args.collect)] if args.collect else []
    if not args.collect:
        import torch

        torch.set_num_threads(1)
        scale = "" if args.budget_scale == 1 else f"-x{args.budget_scale:g}"
        for seed in (int(s) for s in args.seeds.split(",")):
            out = Path(args.runs) / f"{args.dataset}-{args.labels_per_class}pc{scale}-s{seed}"
            run_or_resume({"dataset": args.dataset, "labels_per_class": args.labels_per_class, "seed": seed,
                           "val_per_class": args.val_per_class}, out, args.budget_scale)
            folders.append(out)
    for folder in folders:
        rec = record_of(folder)
        pretrain = rec["stages"][0]["algorithm"]
        budget = rec["stages"][0]["stage"].removeprefix("1-pretrain")  # '+2100it' on a pipeline of another budget
        name = f"{rec['dataset']}-{rec['labels_per_class']}pc-{pretrain}{budget}-s{rec['seed']}.json"
        atomic_write_json(RUNS / name, rec)
    collect()


if __name__ == "__main__":
    main()
