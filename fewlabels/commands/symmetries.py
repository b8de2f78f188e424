"""``fewlabels symmetries``: which flips, rotations, shifts and zooms keep the label, as a table, JSON and a picture."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite
from fewlabels.errors import FewLabelsError

NAME = "symmetries"
HELP = "find which transformations keep the label (augment), change it (SLA) or are already symmetric"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", default="fashion-mnist", help="a built-in dataset, an image folder or an .npz file")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels-per-class", type=int, default=None, help="labeled samples per class (default 4)")
    labels.add_argument("--num-labels", type=int, default=None, help="total labeled samples, spread over the classes")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and the analysis (as train's --seed)")
    p.add_argument("--transformations", default=None, metavar="NAMES",
                   help="comma-separated candidates (default: all of hflip, vflip, rot90, rot180, rot270, transpose, "
                        "antitranspose, rotate, translate, scale)")
    p.add_argument("--out", default="symmetries", metavar="DIR",
                   help="folder for symmetries.json and symmetries.png (default ./symmetries)")
    p.add_argument("--no-cache", action="store_true", help="recompute even when this split was analysed before")
    add_overwrite(p, "symmetries.json and symmetries.png in --out")


def _pm(value, sd, fmt: str = ".2f") -> str:
    """A score and its spread over the resamples, or '-'."""
    if value is None:
        return "-"
    return f"{value:{fmt}}" + ("" if sd is None else f"±{sd:.2f}")


def table(report: dict) -> str:
    """One row per candidate: each score ± its spread over the bootstrap resamples, the verdict and why."""
    lines = [f"{'transformation':<15}{'tell apart':>12}{'agree':>11}{'d loglik':>12}{'worst class':>13}  "
             "verdict / why (votes of the resamples)"]
    for c in report["candidates"]:
        inv = c.get("invariance") or {}
        agree = _pm(c.get("agreement"), c.get("agreement_sd"))
        dll = "-" if not inv else _pm(inv["delta_loglik"], inv.get("delta_loglik_sd"), "+.2f")
        worst = "-" if not inv else f"{inv['worst_class_name'][:6]} {-inv['worst_class_drop']:+.2f}"
        dist = _pm(c["distinguishability"], c.get("distinguishability_sd"))
        lines.append(f"{c['name']:<15}{dist:>12}{agree:>11}{dll:>12}{worst:>13}  {c['verdict']}: {c['reason']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fewlabels import data
    from fewlabels.symmetry.analysis import analyse
    from fewlabels.symmetry.choice import analyse_split, choose, describe, say
    from fewlabels.symmetry.grid import symmetries_png
    from fewlabels.symmetry.transforms import check_names
    from fewlabels.train.config import MAX_SEED
    from fewlabels.utils.io import check_replaceable, check_writable_dir, write_output, write_output_json

    names = None
    if args.transformations is not None:
        names = [n.strip() for n in args.transformations.split(",") if n.strip()]
        if not names:
            raise FewLabelsError("--transformations is empty; give names such as hflip,rot90.")
        check_names(names)
    for flag, value in (("--labels-per-class", args.labels_per_class), ("--num-labels", args.num_labels)):
        if value is not None and value < 1:
            raise FewLabelsError(f"{flag} must be at least 1, got {value}.")
    if not 0 <= args.seed <= MAX_SEED:  # the bounds train's --seed declares
        raise FewLabelsError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}.")
    if not args.out.strip():
        raise FewLabelsError("--out is empty; name a folder for symmetries.json and symmetries.png.")
    out = Path(args.out)
    if out.is_file():
        raise FewLabelsError(f"--out must name a folder, but {out} is a file.")
    check_writable_dir(out)
    for name in ("symmetries.json", "symmetries.png"):
        check_replaceable(out / name, args.overwrite, instead="choose another --out folder")
    source = data.load(args.dataset, args.data_dir)
    train = source.train
    if not train.is_image:
        raise FewLabelsError(f"{args.dataset} holds feature vectors, not images; flips and rotations do not apply.")
    lpc = args.labels_per_class if args.labels_per_class is not None or args.num_labels is not None else 4
    split = data.split(train.y, lpc, args.num_labels, 0, args.seed, train.classes)
    pool = train.x[split.unlabeled] if len(split.unlabeled) else train.x[split.labeled]
    if names is None:
        report, cached = analyse_split(train.x, train.y, split.labeled, split.unlabeled, train.classes, args.seed,
                                       use_cache=not args.no_cache)
    else:
        report = analyse(pool, train.x[split.labeled], train.y[split.labeled], train.classes, names, args.seed,
                         progress=say)
        cached = False
    report["dataset"], report["split"] = train.name, split.summary()
    report["auto_choice"] = choose(report, unjudged_hflip=source.hflip)
    out.mkdir(parents=True, exist_ok=True)
    write_output_json(out / "symmetries.json", report)
    write_output(out / "symmetries.png", symmetries_png(pool, report, args.seed), "png")
    print(f"{train.name}: {split.summary()}; {report['seconds']:.1f} s{' (cached)' if cached else ''}")
    for note in report["notes"]:
        print(f"note: {note}")
    print(table(report))
    print(describe(report["auto_choice"]).replace("augment auto: views use", "--augment auto would use", 1))
    print(f"wrote {out / 'symmetries.json'} and {out / 'symmetries.png'}")
    return 0
