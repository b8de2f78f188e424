"""``fewlabels pipeline``: pretrain without labels, fine-tune with them, distil; each stage a run folder under --out.

With ``--encoder`` the stages are a head on a foundation encoder's embeddings and its distillation into --model
(train/pipeline.py's ENCODER_STAGES); the flags of the stages it does not have are refused.
"""

from __future__ import annotations

import argparse

from fewlabels.commands.common import parse_assignment

NAME = "pipeline"
HELP = "the few-label pipeline: self-supervised pretraining, semi-supervised fine-tuning, distillation (about 15 min on 2 CPU cores)"


def _help(name: str) -> str:
    """A setting's help as ``fewlabels train`` gives it, with its default (one text per setting, never copied by hand)."""
    import dataclasses

    from fewlabels.train.config import TrainConfig

    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    text = field.metadata["help"]
    if field.default is not None and field.default is not dataclasses.MISSING and "default" not in text:
        text += f" (default {field.default})"
    return text.replace("%", "%%")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", help=_help("dataset"))
    p.add_argument("--data-dir", help=_help("data_dir"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels-per-class", type=int, help=_help("labels_per_class"))
    g.add_argument("--num-labels", type=int, help=_help("num_labels"))
    p.add_argument("--val-per-class", type=int, help=_help("val_per_class"))
    p.add_argument("--model", help=_help("model").replace("the network", "the network of every stage"))
    p.add_argument("--image-size", type=int, metavar="N", help=_help("image_size"))
    p.add_argument("--seed", type=int, help=_help("seed").replace("the model", "the models"))
    p.add_argument("--device", help=_help("device"))
    for stage in ("pretrain", "finetune", "distill"):
        p.add_argument(f"--{stage}-iterations", type=int, metavar="N", help=f"steps of the {stage} stage")
    p.add_argument("--encoder", metavar="NAME_OR_PATH",
                   help="start from a foundation encoder (a save_pretrained folder or a Hugging Face id): stage 1 trains a "
                        "head on its embeddings (the teacher), stage 2 distils it into --model; needs "
                        "'fewlabels[foundation]'")
    p.add_argument("--pretrain-algorithm", metavar="NAME", help="the self-supervised method (default simclr)")
    p.add_argument("--finetune-algorithm", metavar="NAME", help="the semi-supervised method (default softmatch)")
    p.add_argument("--stage", action="append", metavar="STAGE.KEY=VALUE", default=[],
                   help="one stage's setting, e.g. --stage finetune.lr=0.01 or --stage finetune.options.threshold=0.9")
    p.add_argument("--out", help="the pipeline's folder (default runs/pipeline-<dataset>-<labels>-s<seed>)")
    p.add_argument("--resume", metavar="DIR", help="continue the pipeline in DIR where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what fewlabels wrote in --out (an earlier pipeline, a run); a folder holding any other file is refused")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def stage_overrides(args: argparse.Namespace) -> dict[str, dict]:
    from fewlabels.errors import FewLabelsError

    overrides: dict[str, dict] = {}
    for stage in ("pretrain", "finetune", "distill"):
        if getattr(args, f"{stage}_iterations") is not None:
            overrides.setdefault(stage, {})["iterations"] = getattr(args, f"{stage}_iterations")
    for stage in ("pretrain", "finetune"):
        if getattr(args, f"{stage}_algorithm"):
            overrides.setdefault(stage, {})["algorithm"] = getattr(args, f"{stage}_algorithm")
    for text in args.stage:
        key, value = parse_assignment(text, "--stage")
        if "." not in key:
            raise FewLabelsError(f"--stage '{text}' must name its stage, e.g. --stage finetune.lr=0.01.")
        stage, setting = key.split(".", 1)
        target = overrides.setdefault(stage, {})
        if setting.startswith("options."):
            target.setdefault("options", {})[setting.split(".", 1)[1]] = value
        else:
            target[setting] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fewlabels.commands.train import labels_tag
    from fewlabels.errors import FewLabelsError
    from fewlabels.train.pipeline import default_stages, resume_pipeline, run_pipeline, summary_table

    given = {k: getattr(args, k) for k in ("dataset", "data_dir", "labels_per_class", "num_labels", "val_per_class",
                                           "model", "image_size", "seed", "device") if getattr(args, k) is not None}
    if args.resume == "":
        raise FewLabelsError("--resume needs the folder of the pipeline to continue, got ''.")
    if args.resume is not None:
        stage_flags = [f"{s}_iterations" for s in ("pretrain", "finetune", "distill")] + ["pretrain_algorithm",
                                                                                        "finetune_algorithm", "encoder"]
        if given or args.stage or args.out is not None or args.overwrite or any(getattr(args, f) is not None for f in stage_flags):
            raise FewLabelsError("--resume continues a pipeline with its own settings; give no other setting with it.")
        record = resume_pipeline(args.resume, progress=not args.quiet)
        out = Path(args.resume)
    else:
        common = {"dataset": "fashion-mnist", **given}
        labels = labels_tag(common.get("labels_per_class"), common.get("num_labels"))
        name = Path(common["dataset"]).stem if "/" in common["dataset"] or common["dataset"].endswith(".npz") else common["dataset"]
        if args.out == "":
            raise FewLabelsError("--out is empty; give the pipeline's folder, e.g. --out runs/my-pipeline.")
        out = Path(args.out if args.out is not None else f"runs/pipeline-{name}-{labels}-s{common.get('seed', 0)}")
        if args.encoder is not None:  # no pretraining or fine-tuning: the encoder's head teaches, the student learns
            unused = next((f for f in ("pretrain_iterations", "finetune_iterations", "pretrain_algorithm",
                                       "finetune_algorithm") if getattr(args, f) is not None), None)
            if unused:
                raise FewLabelsError(f"--{unused.replace('_', '-')} does not apply with --encoder, whose stages are teacher "
                                     "(a head on the encoder's embeddings) and distill; set the teacher's with --stage "
                                     "teacher.KEY=VALUE, e.g. --stage teacher.iterations=500.")
        stages = default_stages(stage_overrides(args), encoder=args.encoder)
        record = run_pipeline(common, out, stages, progress=not args.quiet, overwrite=args.overwrite)
    print(summary_table(record))
    print(f"pipeline written to {out} (evaluate, predict, report and export accept this folder)")
    return 0
