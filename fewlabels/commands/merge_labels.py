"""``fewlabels merge-labels``: the labels given in a labeling round, merged back into the dataset."""

from __future__ import annotations

import argparse

NAME = "merge-labels"
HELP = "merge a labeling round into the dataset: sorted copies (folders) or picks.csv's label column (.npz)"


def add_parser(sub) -> None:
    from fewlabels.commands.common import add_overwrite

    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", required=True, help="the image folder or .npz that suggest picked from")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sorted", metavar="DIR", help="folders: the --copy-to folder, its copies sorted into DIR/<class>/")
    g.add_argument("--labels", metavar="PICKS.csv", help=".npz: picks.csv with its label column filled")
    p.add_argument("--out", metavar="NEW.npz", help=".npz: where to write the merged arrays (a new file: never --dataset "
                   "itself, which stays as it was)")
    add_overwrite(p, "--out (an .npz an earlier merge-labels or embed wrote)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fewlabels.commands.common import output_file
    from fewlabels.errors import FewLabelsError
    from fewlabels.select import merge, rounds

    if args.sorted:
        if not Path(args.dataset).is_dir():
            raise FewLabelsError(f"--sorted goes with an image folder, but {args.dataset} is not a folder.")
        moves = merge.merge_sorted(args.dataset, args.sorted)
        print(f"{len(moves)} samples moved from unlabeled/ into their class folders of {args.dataset}")
        return 0
    if not args.dataset.endswith(".npz") or not Path(args.dataset).is_file():
        raise FewLabelsError(f"--labels goes with an .npz file, but {args.dataset} is not one.")
    if args.out is None:
        raise FewLabelsError("--out NEW.npz is needed with --labels (a new file beside --dataset).")
    # the user's dataset is never replaced, whatever the flags
    if rounds.resolved(args.out, "--out") == rounds.resolved(args.dataset, "--dataset"):
        raise FewLabelsError(f"--out {args.out} is --dataset itself, which merge-labels never replaces; write the merged "
                             "arrays to a new file such as NEW.npz.")
    out = output_file(args.out, ".npz", overwrite=args.overwrite)
    rounds.check_outside_images(out, None, "--out")  # a loop of symbolic links
    if out.suffix != ".npz":
        raise FewLabelsError(f"--out {out} must end in .npz, e.g. NEW.npz.")
    n = merge.merge_npz(args.dataset, args.labels, out)
    print(f"{n} rows labeled; written to {out}")
    return 0
