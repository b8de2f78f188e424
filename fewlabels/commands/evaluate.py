"""``fewlabels evaluate``: accuracy, per-class scores, macro-F1, calibration and confusion of a trained model."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite, add_quiet, add_run_dir, count, load_run, output_file

NAME = "evaluate"
HELP = "score a trained model: accuracy, per-class, macro-F1, calibration (ECE), confusion"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    p.add_argument("--dataset", help="evaluate on this instead of the run's own test set: a built-in name, an image folder "
                   "of class subfolders, or an .npz (X_test/y_test, or fully labeled X/y)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--json", metavar="OUT.json", help="where to write the results (default RUN_DIR/evaluation.json)")
    add_overwrite(p, "--json")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--tta", choices=("auto", "none", "hflip"), default="auto", help="the extra flip-averaged figure: auto "
                   "(the run's recorded choice), none, or hflip (only for a run whose views flip images)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from fewlabels.evaluate.report import format_evaluation
    from fewlabels.evaluate.runs import default_evaluation_path, evaluate_run
    from fewlabels.utils.io import write_output_json

    count(args.batch_size, "--batch-size", "eval_batch_size")
    out = output_file(default_evaluation_path(args.run_dir) if args.json is None else args.json, ".json", "--json", args.overwrite)
    trained = load_run(args.run_dir)
    from fewlabels.evaluate.tta import recorded, served_figures

    recorded(trained.config, args.tta)  # a refused --tta fails before the data is read
    evaluation = evaluate_run(trained, args.run_dir, args.dataset, args.data_dir, args.batch_size, args.quiet)
    record = {**evaluation.record, **served_figures(trained, evaluation.test.x, evaluation.test.y, args.tta, args.batch_size)}
    write_output_json(out, record)  # before printing: a closed pipe (| head) must not cost the file
    print(f"{args.run_dir} ({trained.config.algorithm}, {trained.config.model}) evaluated on {record['dataset']}, "
          f"from {record['data_origin']}")
    print(format_evaluation(record))
    tta = f"with flip test-time augmentation: accuracy {record['accuracy_tta']:.4f}; " if "accuracy_tta" in record else ""
    print(f"{tta}at the run's temperature {record['temperature']:g}: ECE {record['ece']:.4f} -> {record['ece_calibrated']:.4f}")
    print(f"\nwritten to {out}")
    return 0
