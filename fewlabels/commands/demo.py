"""``fewlabels demo``: ReMixMatch on Fashion-MNIST with 4 labels per class (``--pipeline``: the few-label pipeline,
``--fixmatch``: FixMatch alone).

Digits when Fashion-MNIST is absent. ReMixMatch from scratch is the default since it beat the pipeline (pretrain,
fine-tune, distil) at the pipeline's budget on validation on each of three splits (+3.5 to +5.0 points, 2,000 steps
against 3,100, ~11% more CPU; bench/notes/headlines.md); the pipeline stays one flag away, and FixMatch alone takes
half the time.

Each demo has a folder of its own (runs/demo, runs/demo-pipeline, runs/demo-fixmatch), so running one never
replaces another: running a demo again replaces only its own earlier result.
"""

from __future__ import annotations

import argparse
import sys

from fewlabels.commands import pipeline, train

NAME = "demo"
# one folder per demo: one never replaces another
OUT = {"remixmatch": "runs/demo", "pipeline": "runs/demo-pipeline", "fixmatch": "runs/demo-fixmatch"}
STEPS = {"remixmatch": 2000, "fixmatch": 1500}  # the pipeline's stages keep their own
HELP = ("ReMixMatch on Fashion-MNIST with 40 labels, ~15 min on 2 cores (--pipeline: pretrain, fine-tune, distil, "
        "~15 min; --fixmatch: FixMatch alone, ~7 min)")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--iterations", type=int, help=f"steps (default {STEPS['remixmatch']}; with --fixmatch "
                   f"{STEPS['fixmatch']}; with --pipeline each stage's, default the stage's own)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pipeline", action="store_true", help="run the few-label pipeline (pretrain, fine-tune, distil)")
    which.add_argument("--fixmatch", action="store_true", help="run FixMatch alone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help=f"where to write it (default {OUT['remixmatch']}; {OUT['pipeline']} with --pipeline, "
                   f"{OUT['fixmatch']} with --fixmatch); an earlier demo there is replaced")


def run(args: argparse.Namespace) -> int:
    from fewlabels import data

    dataset = "fashion-mnist"
    if data.where(dataset) is None:
        print("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist); "
              "running the demo on scikit-learn's digits instead.", file=sys.stderr)
        dataset = "digits"
    kind = "pipeline" if args.pipeline else "fixmatch" if args.fixmatch else "remixmatch"
    out = args.out or OUT[kind]
    argv = ["--dataset", dataset, "--labels-per-class", "4", "--seed", str(args.seed), "--out", out, "--overwrite"]
    if kind == "pipeline":
        if args.iterations is not None:
            argv += [f"--{stage}-iterations={args.iterations}" for stage in ("pretrain", "finetune", "distill")]
        print("fewlabels pipeline " + " ".join(argv), file=sys.stderr)
        sub = argparse.ArgumentParser(prog="fewlabels").add_subparsers()
        pipeline.add_parser(sub)
        return pipeline.run(sub.choices["pipeline"].parse_args(argv))
    iterations = STEPS[kind] if args.iterations is None else args.iterations
    argv += ["--algorithm", kind, f"--iterations={iterations}", f"--eval-every={max(1, iterations // 6)}"]
    print("fewlabels train " + " ".join(argv), file=sys.stderr)
    return train.run(train.parser().parse_args(argv))
