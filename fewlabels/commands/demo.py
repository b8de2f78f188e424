"""``fewlabels demo``: the few-label pipeline on Fashion-MNIST with 4 labels per class; digits when Fashion-MNIST is absent."""

from __future__ import annotations

import argparse
import sys

from fewlabels.commands import pipeline

NAME = "demo"
HELP = "the pipeline (pretrain, fine-tune, distil) on Fashion-MNIST with 40 labels, ~15 min on 2 cores (digits if absent)"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--iterations", type=int, help="each stage's steps (default: the pipeline's own budgets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")


def run(args: argparse.Namespace) -> int:
    from fewlabels import data

    dataset = "fashion-mnist"
    if data.where(dataset) is None:
        print("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist); "
              "running the demo on scikit-learn's digits instead.", file=sys.stderr)
        dataset = "digits"
    argv = ["--dataset", dataset, "--labels-per-class", "4", "--seed", str(args.seed), "--out", args.out, "--overwrite"]
    if args.iterations is not None:
        argv += [f"--{stage}-iterations={args.iterations}" for stage in ("pretrain", "finetune", "distill")]
    print("fewlabels pipeline " + " ".join(argv), file=sys.stderr)
    sub = argparse.ArgumentParser(prog="fewlabels").add_subparsers()
    pipeline.add_parser(sub)
    return pipeline.run(sub.choices["pipeline"].parse_args(argv))
