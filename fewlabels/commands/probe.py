"""``fewlabels probe``: how good a run's representation is with a few labels (kNN, linear probe, label spreading)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fewlabels.commands.common import add_data_flags, add_overwrite, add_run_dir, output_file, run_and_data, whole_number

NAME = "probe"
MAX_SEEDS = 1000  # labeled splits to average: past this the probe runs for ever for no better mean
HELP = "score a run's representation: kNN, a linear probe or label spreading on its features, over labeled splits"


def add_parser(sub) -> None:
    from fewlabels.evaluate.probe import METHODS

    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    add_data_flags(p, "probe on this dataset instead of the run's own")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels-per-class", type=whole_number("labels_per_class"), metavar="N",
                   help="labeled samples per class (default: the run's own split)")
    g.add_argument("--num-labels", type=whole_number("num_labels"), metavar="N",
                   help="total labeled samples, spread over the classes")
    p.add_argument("--method", default="knn", choices=METHODS, help="the classifier on the features (default knn)")
    p.add_argument("--seeds", type=whole_number((1, MAX_SEEDS)), default=1, metavar="N",
                   help=f"labeled splits to average, seeds run seed, +1, ... (default 1, at most {MAX_SEEDS})")
    p.add_argument("--json", metavar="OUT.json", help="where to write the results (default RUN_DIR/probe-<method>.json)")
    add_overwrite(p, "--json")


def run(args: argparse.Namespace) -> int:
    from fewlabels.evaluate.probe import probe
    from fewlabels.select.rounds import check_outside_images
    from fewlabels.utils.io import write_output_json

    default_json = Path(args.run_dir) / f"probe-{args.method}.json" if Path(args.run_dir).is_dir() else \
        Path(f"{args.run_dir}.probe-{args.method}.json")
    out = output_file(default_json if args.json is None else args.json, ".json", "--json", args.overwrite)
    trained, source = run_and_data(args.run_dir, args.dataset, args.data_dir, "probe it on")
    check_outside_images(out, args.dataset or trained.config.dataset, "--json")
    cfg = trained.config
    own_split = args.labels_per_class is None and args.num_labels is None
    lpc = cfg.labels_per_class if own_split else args.labels_per_class
    num = cfg.num_labels if own_split else args.num_labels
    record = probe(trained.model, source, args.method, lpc, num, [cfg.seed + i for i in range(args.seeds)],
                   channels_last=trained.is_image and cfg.channels_last)
    record["run"] = str(args.run_dir)
    write_output_json(out, record)
    print(f"{args.method} probe of {args.run_dir} ({cfg.algorithm}, {cfg.model}, {record['feature_dim']}-d features) "
          f"on {record['dataset']}")
    print(f"{'seed':>6} {'labels':>7} {'accuracy':>9}")
    for r in record["splits"]:
        print(f"{r['seed']:>6} {r['num_labeled']:>7} {r['accuracy']:>9.4f}")
    print(f"mean {record['accuracy_mean']:.4f} +- {record['accuracy_std']:.4f} over {len(record['splits'])} split(s)")
    print(f"written to {out}")
    return 0
