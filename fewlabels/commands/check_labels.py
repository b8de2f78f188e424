"""``fewlabels check-labels``: the labeled samples whose given label looks wrong, ranked, as a table and a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from fewlabels.commands.common import add_data_flags, add_overwrite, add_run_dir, add_seed, load_run, output_file, positive

NAME = "check-labels"
HELP = "rank a run's labeled samples by how doubtful their given label looks (out-of-sample predictions)"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    add_data_flags(p, "the dataset (default: the run's own)")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; the CSV has every labeled sample)")
    p.add_argument("--encoder", metavar="NAME_OR_PATH", help="judge the labels on a foundation encoder's embeddings "
                   "instead of the run's features: a folder written by transformers' save_pretrained or a Hugging Face "
                   "model id already in the local cache (needs pip install 'fewlabels[foundation]')")
    add_seed(p, "seed of the folds and augmented views")
    p.add_argument("--out", metavar="LABELS.csv", help="the CSV to write (default RUN_DIR/check-labels.csv)")
    add_overwrite(p, "--out")


def run(args: argparse.Namespace) -> int:
    import csv
    import io

    from fewlabels.select.rounds import check_outside_images
    from fewlabels.select.suggestion import check_run
    from fewlabels.utils.io import write_output

    positive(args.top, "--top")
    default = Path(args.run_dir) / "check-labels.csv" if Path(args.run_dir).is_dir() else \
        Path(f"{args.run_dir}.check-labels.csv")
    out = output_file(default if args.out is None else args.out, ".csv", overwrite=args.overwrite)
    trained = load_run(args.run_dir)
    check_outside_images(out, args.dataset or trained.config.dataset, "--out")
    encoder = None
    if args.encoder is not None:
        from fewlabels.foundation import load_encoder

        encoder = load_encoder(args.encoder)
    result = check_run(trained, args.run_dir, args.dataset, args.data_dir, args.seed, encoder=encoder)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(result.rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    write_output(out, buf.getvalue(), "csv")
    print(f"{result.flagged} of {result.num_labeled} given labels of {result.dataset} look wrong "
          "(another class is likelier out of sample)")
    print(f"{'rank':>4}  {'sample':<32} {'given':<12} {'suspected':<12} {'score':>7}")
    for row in result.rows[: args.top]:
        print(f"{row['rank']:>4}  {str(row['sample'])[-32:]:<32} {row['given'][:12]:<12} {row['suspected'][:12]:<12} "
              f"{row['score']:>7}")
    print(f"written to {out}")
    return 0
