"""The few-label pipeline (pretrain, fine-tune, distil) on Fashion-MNIST with 4 labels per class, stage by stage.

    python bench/pipeline.py --seeds 0 --val-per-class 20            # runs the default pipeline per seed
    python bench/pipeline.py --collect runs/bench-pipeline/fm-s0      # records a pipeline folder already run
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
from common import RESULTS, machine  # noqa: E402

RUNS = RESULTS / "pipeline"


def record_of(folder: Path) -> dict:
    from fewlabels.train.pipeline import read_manifest

    manifest = read_manifest(folder)
    stages = []
    for s in manifest["stages"]:
        res = json.loads((Path(s["config"]["out"]) / "results.json").read_text())
        stages.append(stage_record(s["name"], res))
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
              "worst_class": worst, "worst_class_accuracy": per_class.get(worst)}
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
    return {"dataset": dataset, "labels_per_class": labels_per_class, "seed": seed, "val_per_class": val_per_class,
            "baseline": True, "stages": [stage_record("from scratch", res)], "total_wall_time_s": res["wall_time_s"]}


def stage_variant(dataset: str, labels_per_class: int, val_per_class: int, seed: int, stage: str, settings: dict,
                  runs: Path) -> dict:
    """One stage alone with other settings, from the seed's existing earlier stage (its encoder or its teacher).

    What composes best is measured this way without rerunning the stages before it.
    """
    from fewlabels.train.pipeline import DEFAULT_STAGES

    label = variant_label(settings)
    if settings["iterations"] != next(s.settings["iterations"] for s in DEFAULT_STAGES if s.name == stage):
        label += f"+{settings['iterations']}it"  # a budget variant is a row of its own
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
           "--seeds 0,1,2 --baseline fixmatch --iterations 3000 [--labels-per-class 25]  (other stage-1 methods: fewlabels "
           "pipeline --pretrain-algorithm NAME --val-per-class 20 --out DIR, then python bench/pipeline.py --collect DIR; "
           "from the seeds' earlier stages: --linear-probe --encoder TEMPLATE, --finetune ALGORITHM --encoder TEMPLATE, "
           "--distill-into MODEL --teacher TEMPLATE; digits: --dataset digits --labels-per-class 5 --val-per-class 10)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--labels-per-class", type=int, default=4)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--seeds", default="0")
    p.add_argument("--runs", default="runs/bench-pipeline")
    p.add_argument("--collect", metavar="DIR", help="record a pipeline folder that has already run")
    p.add_argument("--baseline", metavar="ALGORITHM", help="instead of the pipeline, this algorithm from scratch")
    p.add_argument("--iterations", type=int, default=3000, help="the baseline's (or the stage-2 variant's) iterations")
    p.add_argument("--finetune", metavar="ALGORITHM", help="a stage-2 variant from each seed's stage-1 --encoder")
    p.add_argument("--encoder", metavar="TEMPLATE", help="the stage-1 folder per seed, with {seed} in it")
    p.add_argument("--linear-probe", action="store_true",
                   help="pretraining + a linear probe: logistic regression on each seed's --encoder features")
    p.add_argument("--backbone-lr-scale", type=float, help="the stage-2 variant's backbone learning-rate scale")
    p.add_argument("--init-head", action="store_true", help="the stage-2 variant starts from stage 1's probe head too")
    p.add_argument("--distill-into", metavar="MODEL", help="a stage-3 variant: this student from each seed's --teacher")
    p.add_argument("--teacher", metavar="TEMPLATE", help="the stage-2 folder per seed, with {seed} in it")
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
            atomic_write_json(RUNS / f"{args.dataset}-{args.labels_per_class}pc-scratch-{args.baseline}-s{seed}.json", rec)
        collect()
        return
    folders = [Path(args.collect)] if args.collect else []
    if not args.collect:
        import torch

        from fewlabels.train.pipeline import run_pipeline

        torch.set_num_threads(1)
        for seed in (int(s) for s in args.seeds.split(",")):
            out = Path(args.runs) / f"{args.dataset}-{args.labels_per_class}pc-s{seed}"
            if not list(RUNS.glob(f"{args.dataset}-{args.labels_per_class}pc-*-s{seed}.json")):
                run_pipeline({"dataset": args.dataset, "labels_per_class": args.labels_per_class, "seed": seed,
                              "val_per_class": args.val_per_class}, out, progress=False, overwrite=True)
            folders.append(out)
    for folder in folders:
        rec = record_of(folder)
        pretrain = rec["stages"][0]["algorithm"]
        atomic_write_json(RUNS / f"{rec['dataset']}-{rec['labels_per_class']}pc-{pretrain}-s{rec['seed']}.json", rec)
    collect()


if __name__ == "__main__":
    main()
