"""``fewlabels predict``: classes and probabilities for images or an .npy array, as a CSV."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite, add_quiet, add_run_dir, count, load_run, output_file

NAME = "predict"
HELP = "classify images or an .npy array and write a CSV of classes and probabilities"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="an image folder (searched recursively), image files, or one .npy array")
    p.add_argument("--out", required=True, metavar="PREDS.csv", help="the CSV to write")
    add_overwrite(p, "--out")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--tta", choices=("auto", "none", "hflip"), default="auto", help="test-time augmentation: auto (the "
                   "run's recorded choice), none, or hflip (only for a run whose views flip images)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from fewlabels.evaluate.predictions import check_inputs, predict_inputs, write_predictions_csv

    batch_size = count(args.batch_size, "--batch-size", "eval_batch_size")
    out = output_file(args.out, ".csv", overwrite=args.overwrite)
    check_inputs(args.inputs)
    from fewlabels.evaluate.tta import served

    run = served(load_run(args.run_dir), args.tta)  # flip TTA where recorded; probabilities at the run's temperature
    predictions = predict_inputs(run, args.inputs, batch_size, args.quiet)
    write_predictions_csv(out, predictions)
    top = ", ".join(f"{c} ({n})" for c, n in predictions.counts()[:5])
    print(f"wrote {out}: {len(predictions.items)} predictions (test-time augmentation {run.mode}, temperature "
          f"{run.temperature:g}); most predicted: {top}")
    return 0
