"""The command line: ``fewlabels train | datasets``.

Bad input ends in one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from fewlabels.errors import FewLabelsError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise FewLabelsError(f"--option '{text}' must look like name=value, e.g. threshold=0.9.")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _add_train(sub) -> None:
    from fewlabels.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a classifier from a few labels and unlabeled data")
    p.add_argument("--dataset", default=d.dataset, help="fashion-mnist, digits, or an image folder path")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels-per-class", type=int, default=None, help=f"labeled samples per class (default {d.labels_per_class})")
    g.add_argument("--num-labels", type=int, default=None, help="total labeled samples, spread over the classes")
    p.add_argument("--val-per-class", type=int, default=d.val_per_class, help="labeled samples per class held out for validation")
    p.add_argument("--algorithm", default=d.algorithm, help="fixmatch or supervised")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="algorithm hyper-parameter, e.g. --option threshold=0.9 (repeatable)")
    p.add_argument("--model", default=d.model, help="cnn, cnn-wide, wrn-28-2 (images) or mlp (features)")
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="labeled batch size")
    p.add_argument("--uratio", type=int, default=d.uratio, help="unlabeled batch = uratio x batch size")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the split, the model and the augmentation")
    p.add_argument("--no-hflip", action="store_true", help="never flip images horizontally")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<algorithm>-<labels>-s<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_train(args) -> int:
    from pathlib import Path

    from fewlabels.train import TrainConfig, train

    labels_per_class = args.labels_per_class
    if labels_per_class is None and args.num_labels is None:
        labels_per_class = TrainConfig.labels_per_class
    options = dict(_parse_option(o) for o in args.option)
    name = Path(args.dataset).name if Path(args.dataset).is_dir() else args.dataset
    labels = f"{labels_per_class}pc" if labels_per_class is not None else f"{args.num_labels}l"
    out = args.out or f"runs/{name}-{args.algorithm}-{labels}-s{args.seed}"
    config = TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, labels_per_class=labels_per_class, num_labels=args.num_labels,
        val_per_class=args.val_per_class, seed=args.seed, hflip=False if args.no_hflip else None,
        algorithm=args.algorithm, options=options, model=args.model, iterations=args.iterations,
        batch_size=args.batch_size, uratio=args.uratio, lr=args.lr, weight_decay=args.weight_decay,
        ema_decay=args.ema_decay, eval_every=args.eval_every, out=out, device=args.device,
    )
    results = train(config, progress=not args.quiet, overwrite=args.overwrite)
    acc = results.get("test_accuracy")
    summary = (f"{results['algorithm']} on {results['dataset']} with {results['num_labeled']} labels, "
               f"{results['iterations']} iterations in {results['wall_time_s'] / 60:.1f} min")
    print(summary)
    if acc is not None:
        print(f"final test accuracy (EMA model): {acc:.4f}")
    print(f"run written to {out}")
    return 0


def _cmd_demo(args) -> int:
    """FixMatch on Fashion-MNIST with 4 labels per class; digits when Fashion-MNIST is absent."""
    from fewlabels import data

    dataset = "fashion-mnist"
    if data.where(dataset) is None:
        print("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist); "
              "running the demo on scikit-learn's digits instead.", file=sys.stderr)
        dataset = "digits"
    argv = ["train", "--dataset", dataset, "--labels-per-class", "4", "--algorithm", "fixmatch",
            "--iterations", str(args.iterations), "--eval-every", str(max(1, args.iterations // 6)),
            "--seed", str(args.seed), "--out", args.out, "--overwrite"]
    print("fewlabels " + " ".join(argv), file=sys.stderr)
    return _cmd_train(build_parser().parse_args(argv))


def _cmd_augment_preview(args) -> int:
    import io
    from pathlib import Path

    import torch
    from PIL import Image

    from fewlabels import data
    from fewlabels.augment.preview import preview_grid
    from fewlabels.utils.io import atomic_write_bytes, check_writable_dir

    if args.n < 1:
        raise FewLabelsError(f"--n must be at least 1, got {args.n}.")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise FewLabelsError(f"--out must name a .png file, got {out}.")
    check_writable_dir(out.parent)
    source = data.load(args.dataset, args.data_dir)
    if not source.train.is_image:
        raise FewLabelsError(f"{args.dataset} holds feature vectors, not images; there is nothing to preview.")
    pick = torch.randperm(len(source.train), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    hflip = source.hflip and not args.no_hflip
    grid = preview_grid(source.train.x[pick], hflip=hflip, strong_views=args.strong_views, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out}: {args.n} images; columns: original, weak, {args.strong_views} strong views")
    return 0


def _cmd_datasets(args) -> int:
    from fewlabels import data

    rows = []
    for name, description in data.BUILTIN.items():
        found = data.where(name, args.data_dir)
        rows.append({"name": name, "description": description, "found": found})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        status = r["found"] or "NOT FOUND (apt-get install dataset-fashion-mnist, or --data-dir / $FEWLABELS_DATA)"
        print(f"{r['name']:<15} {r['description']}\n{'':<15} found: {status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fewlabels import __version__

    parser = argparse.ArgumentParser(prog="fewlabels", description="Train classifiers from a few labels plus unlabeled data.")
    parser.add_argument("--version", action="version", version=f"fewlabels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("demo", help="FixMatch on Fashion-MNIST with 40 labels (digits if absent)")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")
    p = sub.add_parser("augment-preview", help="save a PNG of originals beside weak and strong views")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="augment-preview.png")
    p.add_argument("--n", type=int, default=8, help="number of images (rows)")
    p.add_argument("--strong-views", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hflip", action="store_true")
    p = sub.add_parser("datasets", help="list the built-in datasets and where each was found")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _cmd_train, "demo": _cmd_demo, "datasets": _cmd_datasets,
                "augment-preview": _cmd_augment_preview}
    try:
        return commands[args.command](args)
    except FewLabelsError as exc:
        print(f"fewlabels: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fewlabels: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed run: say what, keep it short
        from fewlabels.train import TrainingError

        if isinstance(exc, TrainingError):
            print(f"fewlabels: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
