"""``fewlabels demo``: FixMatch on Fashion-MNIST with 4 labels per class; digits when Fashion-MNIST is absent."""

from __future__ import annotations

import argparse
import sys

from fewlabels.commands import train

NAME = "demo"
HELP = "FixMatch on Fashion-MNIST with 40 labels (digits if absent)"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")


def run(args: argparse.Namespace) -> int:
    from fewlabels import data

    dataset = "fashion-mnist"
    if data.where(dataset) is None:
        print("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist); "
              "running the demo on scikit-learn's digits instead.", file=sys.stderr)
        dataset = "digits"
    argv = ["--dataset", dataset, "--labels-per-class", "4", "--algorithm", "fixmatch",
            "--iterations", str(args.iterations), "--eval-every", str(max(1, args.iterations // 6)),
            "--seed", str(args.seed), "--out", args.out, "--overwrite"]
    print("fewlabels train " + " ".join(argv), file=sys.stderr)
    return train.run(train.parser().parse_args(argv))
