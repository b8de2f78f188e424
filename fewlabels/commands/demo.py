"""``fewlabels demo``: the few-label pipeline on Fashion-MNIST with 4 labels per class (``--fixmatch``: FixMatch alone).

Digits when Fashion-MNIST is absent. The pipeline is the default since its SoftMatch fine-tuning put it ahead of
FixMatch from scratch at the same number of steps on each of three splits, its worst class too (bench/notes/pipeline.md);
FixMatch alone takes half the time.

Each demo has a folder of its own (runs/demo, runs/demo-fixmatch), so ``make demo`` then ``make demo
DEMO_FLAGS=--fixmatch`` keeps both: running a demo again replaces only its own earlier result.
"""

from __future__ import annotations

import argparse
import sys

from fewlabels.commands import pipeline, train

NAME = "demo"
OUT, FIXMATCH_OUT = "runs/demo", "runs/demo-fixmatch"  # two folders: one demo never replaces the other
HELP = ("the few-label pipeline (pretrain, fine-tune, distil) on Fashion-MNIST with 40 labels, ~15 min on 2 cores "
        "(--fixmatch: FixMatch alone, ~7 min)")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--iterations", type=int, help="each stage's steps (default: the stage's own; with --fixmatch 1500)")
    p.add_argument("--fixmatch", action="store_true", help="run FixMatch alone instead of the pipeline")
    p.add_argument("--pipeline", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help=f"where to write it (default {OUT} for the pipeline, {FIXMATCH_OUT} with --fixmatch); "
                   "an earlier demo there is replaced")


def run(args: argparse.Namespace) -> int:
    from fewlabels import data

    dataset = "fashion-mnist"
    if data.where(dataset) is None:
        print("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist); "
              "running the demo on scikit-learn's digits instead.", file=sys.stderr)
        dataset = "digits"
    out = args.out or (FIXMATCH_OUT if args.fixmatch else OUT)
    argv = ["--dataset", dataset, "--labels-per-class", "4", "--seed", str(args.seed), "--out", out, "--overwrite"]
    if not args.fixmatch:
        if args.iterations is not None:
            argv += [f"--{stage}-iterations={args.iterations}" for stage in ("pretrain", "finetune", "distill")]
        print("fewlabels pipeline " + " ".join(argv), file=sys.stderr)
        sub = argparse.ArgumentParser(prog="fewlabels").add_subparsers()
        pipeline.add_parser(sub)
        return pipeline.run(sub.choices["pipeline"].parse_args(argv))
    iterations = 1500 if args.iterations is None else args.iterations
    argv += ["--algorithm", "fixmatch", f"--iterations={iterations}", f"--eval-every={max(1, iterations // 6)}"]
    print("fewlabels train " + " ".join(argv), file=sys.stderr)
    return train.run(train.parser().parse_args(argv))
