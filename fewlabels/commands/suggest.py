"""``fewlabels suggest``: the unlabeled samples most worth labeling next, as a CSV (and copied out to sort)."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite, add_seed, load_run, output_file, whole_number

NAME = "suggest"
HELP = "list the unlabeled samples most worth labeling next (typicality, coverage or uncertainty), as a CSV"


def add_parser(sub) -> None:
    from fewlabels.select.strategies import STRATEGIES, SWITCH_PER_CLASS

    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", required=True, help="a built-in dataset, an image folder (class subfolders + unlabeled/) "
                   "or an .npz (y = -1 unlabeled)")
    p.add_argument("--data-dir", help="folder holding a built-in dataset's files")
    p.add_argument("--from", dest="run_dir", metavar="RUN_DIR", help="a run on this dataset: its features and "
                   "predictions (default: none, a cold start on a PCA of the raw samples)")
    p.add_argument("--budget", type=whole_number("num_labels"), required=True, metavar="N",
                   help="how many samples to pick")
    p.add_argument("--strategy", default="auto", help=f"one of {', '.join(STRATEGIES)} (default auto: typiclust below "
                   f"{SWITCH_PER_CLASS} labels per class or without a model, margin from there)")
    p.add_argument("--encoder", metavar="NAME_OR_PATH", help="a foundation encoder's embeddings instead of the PCA (and "
                   "instead of --from): a folder written by transformers' save_pretrained or a Hugging Face model id "
                   "already in the local cache (needs pip install 'fewlabels[foundation]')")
    add_seed(p, "seed of the clustering and random draws")
    p.add_argument("--out", required=True, metavar="PICKS.csv", help="the CSV to write")
    add_overwrite(p, "--out (picks.csv of an earlier suggest)")
    p.add_argument("--copy-to", metavar="DIR", help="image folders: copy the picks into DIR to sort into DIR/<class>/, "
                   "then run fewlabels merge-labels")
    p.add_argument("--link", action="store_true", help="with --copy-to: symbolic links instead of copies")


def run(args: argparse.Namespace) -> int:
    from fewlabels.errors import FewLabelsError
    from fewlabels.select import rounds
    from fewlabels.select.pool import load_pool
    from fewlabels.select.strategies import STRATEGIES
    from fewlabels.select.suggestion import suggest

    if args.strategy not in STRATEGIES:
        raise FewLabelsError(f"Unknown strategy '{args.strategy}': choose one of {', '.join(STRATEGIES)}.")
    if args.link and not args.copy_to:
        raise FewLabelsError("--link goes with --copy-to DIR.")
    if args.encoder is not None and args.run_dir:
        raise FewLabelsError("--encoder and --from are two sources of features; give one.")
    out = output_file(args.out, ".csv", overwrite=args.overwrite)
    rounds.check_outside_images(out, args.dataset, "--out")
    target = None
    if args.copy_to is not None:
        pool = load_pool(args.dataset, args.data_dir)
        target = rounds.check_copy_to(args.copy_to, pool.root, pool.kind)
    run = load_run(args.run_dir) if args.run_dir else None
    encoder = None
    if args.encoder is not None:
        from fewlabels.foundation import load_encoder

        encoder = load_encoder(args.encoder)
    result = suggest(args.dataset, args.budget, args.strategy, run, args.seed, args.data_dir, args.run_dir, encoder)
    created = []
    if target is not None:  # the copies first, all or none; then the CSV that names them
        samples = [r["sample"] for r in result.rows]
        for row, name in zip(result.rows, rounds.copy_names(samples, result.pool.root, result.pool.classes)):
            row["copy"] = name
        created = rounds.copy_picks(samples, target, result.pool.classes, args.link, root=result.pool.root)
    try:
        rounds.write_picks(out, result.rows)
    except BaseException:
        rounds.undo_copies(created)
        raise
    print(f"{len(result.rows)} picks by {result.strategy} on {result.embedding}")
    print(f"{'rank':>4}  {'sample':<32} {'predicted':<12} reason")
    for row in result.rows[:20]:
        print(f"{row['rank']:>4}  {str(row['sample'])[-32:]:<32} {str(row.get('predicted', '')):<12} {row['reason']}")
    if len(result.rows) > 20:
        print(f"... {len(result.rows) - 20} more in {out}")
    print(f"written to {out}")
    if target is not None:
        print(f"{'linked' if args.link else 'copied'} into {target}: move each into {target}/<class>/, then "
              f"fewlabels merge-labels --dataset {args.dataset} --sorted {target}")
    elif result.pool.kind == "arrays":
        print(f"fill the label column of {out}, then fewlabels merge-labels --dataset {args.dataset} --labels {out} "
              "--out NEW.npz")
    return 0
