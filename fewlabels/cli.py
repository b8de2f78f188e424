"""The command line: ``fewlabels train | datasets``.

Bad input ends in one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Sequence

import yaml

from fewlabels.errors import FewLabelsError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
USER_FIXABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _parse_assignment(text: str, flag: str) -> tuple[str, object]:
    if "=" not in text:
        raise FewLabelsError(f"{flag} '{text}' must look like name=value, e.g. {flag} threshold=0.9.")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


# flags that set a TrainConfig field of the same name; absent unless given (argparse.SUPPRESS)
CONFIG_FLAGS = ("dataset", "data_dir", "labels_per_class", "num_labels", "val_per_class", "algorithm", "model",
                "iterations", "batch_size", "uratio", "lr", "weight_decay", "ema_decay", "eval_every", "checkpoint_every",
                "keep_checkpoints", "seed", "device", "out", "deterministic")


def _add_train(sub) -> None:
    from fewlabels.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a classifier from a few labels and unlabeled data", argument_default=argparse.SUPPRESS)
    p.add_argument("--config", help="YAML file of settings (keys as in a run's config.yaml); flags override it")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting, e.g. --set lr=0.01 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--dataset", help=f"fashion-mnist, digits, an image folder or an .npz file (default {d.dataset})")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels-per-class", type=int, help=f"labeled samples per class (default {d.labels_per_class})")
    g.add_argument("--num-labels", type=int, help="total labeled samples, spread over the classes")
    p.add_argument("--val-per-class", type=int, help="labeled samples per class held out for validation (default 0)")
    p.add_argument("--algorithm", help=f"fixmatch or supervised (default {d.algorithm})")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="algorithm hyper-parameter, e.g. --option threshold=0.9 (repeatable)")
    p.add_argument("--model", help=f"cnn, cnn-wide, wrn-28-2 (images) or mlp (features) (default {d.model})")
    p.add_argument("--iterations", type=int, help=f"training steps (default {d.iterations})")
    p.add_argument("--batch-size", type=int, help=f"labeled batch size (default {d.batch_size})")
    p.add_argument("--uratio", type=int, help=f"unlabeled batch = uratio x batch size (default {d.uratio})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, help=f"(default {d.weight_decay})")
    p.add_argument("--ema-decay", type=float, help=f"(default {d.ema_decay})")
    p.add_argument("--eval-every", type=int, help=f"steps between evaluations (default {d.eval_every})")
    p.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints (default {d.checkpoint_every})")
    p.add_argument("--keep-checkpoints", type=int, help=f"how many checkpoints to keep (default {d.keep_checkpoints})")
    p.add_argument("--seed", type=int, help="seeds the split, the model and the augmentation (default 0)")
    p.add_argument("--no-hflip", action="store_true", help="never flip images horizontally")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels only")
    p.add_argument("--device", help="auto, cpu or cuda (default auto)")
    p.add_argument("--out", help="run folder (default runs/<dataset>-<algorithm>-<labels>-s<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _load_config_file(path: str) -> dict:
    from pathlib import Path

    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise FewLabelsError(f"Cannot read config file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise FewLabelsError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise FewLabelsError(f"Config file {path} must be a mapping of settings, got a {type(loaded).__name__}.")
    return loaded


def config_from_args(args):
    """Defaults, then --config, then flags, then --set: the last word wins."""
    from pathlib import Path

    from fewlabels.train import TrainConfig

    given = vars(args)
    settings: dict = _load_config_file(given["config"]) if "config" in given else {}
    try:
        TrainConfig.from_dict(settings)  # unknown keys are refused here, with the closest valid one
    except FewLabelsError as exc:
        raise FewLabelsError(f"{given['config']}: {exc}") from None
    for name in CONFIG_FLAGS:
        if name in given:
            settings[name] = given[name]
    if given.get("no_hflip"):
        settings["hflip"] = False
    if "option" in given:
        settings["options"] = {**settings.get("options", {}), **dict(_parse_assignment(o, "--option") for o in given["option"])}
    for text in given.get("set", []):
        key, value = _parse_assignment(text, "--set")
        if key.startswith("options."):
            settings["options"] = {**settings.get("options", {}), key.split(".", 1)[1]: value}
        else:
            settings[key] = value
    if settings.get("num_labels") is not None and "labels_per_class" not in settings:
        settings["labels_per_class"] = None  # the default of 4 per class gives way to an explicit total
    config = TrainConfig.from_dict(settings)
    config.validate()
    if config.out is None:
        name = Path(config.dataset).stem if ("/" in config.dataset or config.dataset.endswith(".npz")) else config.dataset
        labels = f"{config.labels_per_class}pc" if config.labels_per_class is not None else f"{config.num_labels}l"
        config.out = f"runs/{name}-{config.algorithm}-{labels}-s{config.seed}"
    return config


def _print_results(results: dict, out: str) -> None:
    print(f"{results['algorithm']} on {results['dataset']} with {results['num_labeled']} labels, "
          f"{results['iterations']} iterations in {results['wall_time_s'] / 60:.1f} min")
    if results.get("test_accuracy") is not None:
        print(f"final test accuracy (EMA model): {results['test_accuracy']:.4f}")
    print(f"run written to {out}")


def _cmd_train(args) -> int:
    from fewlabels.train import resume, train

    given = vars(args)
    quiet = given.get("quiet", False)
    if "resume" in given:
        extra = [f"--{k.replace('_', '-')}" for k in (*CONFIG_FLAGS, "config", "set", "option", "no_hflip") if k in given]
        if extra:
            raise FewLabelsError(f"--resume continues a run with its saved settings; drop {extra[0]}.")
        results = resume(given["resume"], progress=not quiet)
        _print_results(results, given["resume"])
        return 0
    config = config_from_args(args)
    results = train(config, progress=not quiet, overwrite=given.get("overwrite", False))
    _print_results(results, config.out)
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
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FewLabelsError(f"--out must name a .png file, got {out}{' (a folder)' if out.is_dir() else ''}.")
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


class UsageError(Exception):
    """A malformed command line (argparse's complaint), reported like any other bad input."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence and exit code 2 from ``main``, not a usage dump."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help').")


def build_parser() -> argparse.ArgumentParser:
    from fewlabels import __version__

    parser = OneLineParser(prog="fewlabels", description="Train classifiers from a few labels plus unlabeled data.")
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
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"fewlabels: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    commands = {"train": _cmd_train, "demo": _cmd_demo, "datasets": _cmd_datasets,
                "augment-preview": _cmd_augment_preview}
    try:
        return commands[args.command](args)
    except FewLabelsError as exc:
        print(f"fewlabels: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # disk full, read-only file system, permissions: the user's environment, not a bug
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"fewlabels: error: could not write{where}: {exc.strerror}; free space or choose another --out folder.",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # outside the training loop (which stops cleanly by itself)
        print("fewlabels: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed or stopped run: say what, keep it short
        from fewlabels.train import TrainingError, TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            print(f"fewlabels: {exc}.", file=sys.stderr)
            return 128 + exc.signum
        if isinstance(exc, TrainingError):
            print(f"fewlabels: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
