"""The command line: ``fewlabels train | evaluate | predict | report | export | datasets``.

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
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string; a number was meant
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip(), parsed


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
        if results:  # under torchrun only rank 0 reports
            _print_results(results, given["resume"])
        return 0
    config = config_from_args(args)
    results = train(config, progress=not quiet, overwrite=given.get("overwrite", False))
    if results:
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


def _logits(run, batches, total: int, quiet: bool, desc: str):
    """Logits for a stream of input batches, with a progress bar (to stderr) unless ``quiet``."""
    import torch
    from tqdm import tqdm

    out = []
    # disable=None: no bar when stderr is not a terminal (logs, pipes), so an error stays the only line there
    with tqdm(total=total, desc=desc, unit="img" if run.is_image else "row", disable=True if quiet else None, dynamic_ncols=True,
              leave=False) as bar:
        for xb in batches:
            out.append(run.logits(xb))
            bar.update(len(xb))
    return torch.cat(out) if out else torch.empty((0, len(run.classes)))


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise FewLabelsError(f"{flag} must be at least 1, got {value}.")
    return value


def _output_file(path, suffix: str, flag: str = "--out"):
    """Check an output file can be written before any work, so a typo does not cost an evaluation."""
    from pathlib import Path

    from fewlabels.utils.io import check_writable_dir

    path = Path(path)
    if path.is_dir():
        raise FewLabelsError(f"{flag} must name a file, but {path} is a folder; e.g. {path / ('out' + suffix)}.")
    check_writable_dir(path.parent)
    return path


def _load_run(path: str):
    from fewlabels.api import load

    return load(path)


def _evaluate_run(run, run_dir: str, dataset: str | None, data_dir: str | None, batch_size: int, quiet: bool):
    """The run's test set (or --dataset), its logits, and the evaluation record."""
    from fewlabels.evaluate.inputs import labeled_set
    from fewlabels.evaluate.report import evaluation_record

    own = dataset is None
    name = run.config.dataset if own else dataset
    data_dir = data_dir if data_dir is not None else (run.config.data_dir if own else None)
    test = labeled_set(name, data_dir, run.classes, run.sample_shape, own=own)
    if len(test.y) == 0:
        raise FewLabelsError(f"{name} holds no labeled samples to evaluate on.")
    batches = (test.x[i : i + batch_size] for i in range(0, len(test.x), batch_size))
    logits = _logits(run, batches, len(test.x), quiet, "evaluate")
    record = evaluation_record(logits, test.y, run.classes)
    record = {"run": str(run_dir), "dataset": test.name, "data_origin": test.origin, "model": run.config.model,
              "algorithm": run.config.algorithm, **record}
    return test, logits, record


def _cmd_evaluate(args) -> int:
    from pathlib import Path

    from fewlabels.evaluate.report import format_evaluation
    from fewlabels.utils.io import atomic_write_json

    _positive(args.batch_size, "--batch-size")
    src = Path(args.run_dir)
    default = src / "evaluation.json" if src.is_dir() else src.with_name(src.stem + ".evaluation.json")
    out = _output_file(args.json or default, ".json", "--json")
    run = _load_run(args.run_dir)
    _, _, record = _evaluate_run(run, args.run_dir, args.dataset, args.data_dir, args.batch_size, args.quiet)
    atomic_write_json(out, record)  # before printing: a closed pipe (| head) must not cost the file
    print(f"{args.run_dir} ({run.config.algorithm}, {run.config.model}) evaluated on {record['dataset']}, from {record['data_origin']}")
    print(format_evaluation(record))
    print(f"\nwritten to {out}")
    return 0


def _cmd_predict(args) -> int:
    import csv
    import io

    import torch

    from fewlabels.evaluate import inputs
    from fewlabels.utils.io import atomic_write_text

    bs = _positive(args.batch_size, "--batch-size")
    out = _output_file(args.out, ".csv")
    npy = [i for i in args.inputs if i.lower().endswith(".npy")]
    if npy and len(args.inputs) > 1:
        raise FewLabelsError(f"A .npy array ({npy[0]}) must be the only input; predict it on its own.")
    run = _load_run(args.run_dir)
    if npy:
        x = inputs.load_npy(npy[0], run.sample_shape)
        items = [str(i) for i in range(len(x))]
        batches = (x[i : i + bs] for i in range(0, len(x), bs))
    else:
        paths = inputs.image_paths(args.inputs)
        items = [str(p) for p in paths]
        batches = inputs.image_batches(paths, run.sample_shape, bs)
    probs = torch.softmax(_logits(run, batches, len(items), args.quiet, "predict").double(), dim=1)
    conf, pred = probs.max(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["item", "class", "probability", *(f"p_{c}" for c in run.classes)])
    for item, k, p, row in zip(items, pred.tolist(), conf.tolist(), probs.tolist()):
        writer.writerow([item, run.classes[k], f"{p:.6f}", *(f"{v:.6f}" for v in row)])
    atomic_write_text(out, buf.getvalue())
    counts = torch.bincount(pred, minlength=len(run.classes)).tolist()
    top = sorted(zip(counts, run.classes), reverse=True)[:5]
    print(f"wrote {out}: {len(items)} predictions; most predicted: " + ", ".join(f"{c} ({n})" for n, c in top if n))
    return 0


def _cmd_report(args) -> int:
    from pathlib import Path

    import torch

    from fewlabels.evaluate.report import PLOTS, build_report, read_metrics, read_results
    from fewlabels.utils.io import atomic_write_bytes, atomic_write_text, check_writable_dir

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FewLabelsError(f"report needs a run folder (with metrics.csv and last.pt), got {'the file ' if run_dir.exists() else ''}"
                             f"{run_dir}{'' if run_dir.exists() else ', which does not exist'}.")
    out = _output_file(args.out or run_dir / "report.html", ".html")
    png_dir = run_dir / "report"
    check_writable_dir(png_dir)
    run = _load_run(str(run_dir))
    results = read_results(run_dir / "results.json")
    rows = read_metrics(run_dir / "metrics.csv")
    config = run.config.to_dict()  # from last.pt: the settings the weights were trained with
    notes = []
    if not results:
        notes.append("results.json is missing: the run has not finished; this reports its last checkpoint.")
    test = logits = evaluation = None
    try:
        test, logits, evaluation = _evaluate_run(run, str(run_dir), args.dataset, args.data_dir, 512, args.quiet)
    except FewLabelsError as exc:
        if args.dataset is not None:
            raise
        notes.append("The test set could not be loaded, so the confusion matrix comes from results.json and the reliability "
                     f"diagram and the mistakes are left out (pass --dataset to include them): {exc}")
        print(f"fewlabels: warning: {exc}", file=sys.stderr)
    probs = torch.softmax(logits.double(), dim=1) if logits is not None else None
    html_text, pngs = build_report(run_dir.resolve().name, results, config, rows, evaluation,
                                   test.x if test is not None else None, probs, test.y if test is not None else None, notes)
    png_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:  # an earlier report's plot that this one no longer has must not linger
        if name not in pngs:
            (png_dir / f"{name}.png").unlink(missing_ok=True)
    for name, data in pngs.items():
        atomic_write_bytes(png_dir / f"{name}.png", data)
    atomic_write_text(out, html_text)
    print(f"wrote {out} ({len(html_text) / 1024:.0f} KB, self-contained) and {len(pngs)} plots in {png_dir}/")
    return 0


def _cmd_export(args) -> int:
    from fewlabels import export

    out = _output_file(args.out or export.default_path(args.run_dir, args.format), export.FORMATS[args.format])
    if args.format == "onnx":
        export.require_onnx()  # before loading the model
    run = _load_run(args.run_dir)
    export.export(run, out, args.format)
    shape = f"(N, {', '.join(map(str, run.sample_shape))})"
    kind = f"float images {shape} on 0..1" if run.is_image else f"float features {shape}"
    print(f"wrote {out} ({args.format}): takes {kind}, returns logits (N, {len(run.classes)}) "
          f"for classes {', '.join(run.classes[:10])}{', ...' if len(run.classes) > 10 else ''}")
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
    p.add_argument("--iterations", type=int, default=1500)
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
    p = sub.add_parser("evaluate", help="score a trained model: accuracy, per-class, macro-F1, calibration (ECE), confusion")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or a model file saved by Run.save)")
    p.add_argument("--dataset", help="evaluate on this instead of the run's own test set: a built-in name, an image folder "
                   "of class subfolders, or an .npz (X_test/y_test, or fully labeled X/y)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--json", metavar="OUT.json", help="where to write the results (default RUN_DIR/evaluation.json)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("predict", help="classify images or an .npy array and write a CSV of classes and probabilities")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or a model file saved by Run.save)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="an image folder (searched recursively), image files, or one .npy array")
    p.add_argument("--out", required=True, metavar="PREDS.csv", help="the CSV to write")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("report", help="write an HTML report with learning curves, confusion matrix, calibration and mistakes")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    p.add_argument("--out", metavar="REPORT.html", help="the HTML file (default RUN_DIR/report.html); plots go to RUN_DIR/report/")
    p.add_argument("--dataset", help="test data to use when the run's own cannot be found (as for evaluate)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("export", help="save the model as TorchScript (or ONNX) for serving without fewlabels")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or a model file saved by Run.save)")
    p.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript")
    p.add_argument("--out", help="the file to write (default RUN_DIR/model.ts or model.onnx)")
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
                "augment-preview": _cmd_augment_preview, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
                "report": _cmd_report, "export": _cmd_export}
    try:
        return commands[args.command](args)
    except FewLabelsError as exc:
        print(f"fewlabels: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head` and the like: the reader has seen enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush does not fail again
        return 141  # 128 + SIGPIPE, as a shell reports it
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
