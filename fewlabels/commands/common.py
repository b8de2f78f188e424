"""What every command shares: exit codes, the one-sentence parser, errors to exit codes, argument checks."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import yaml

from fewlabels.errors import FewLabelsError

EXIT_OK = 0
EXIT_FAILED = 1  # a run that started and failed (NaN loss, ...)
EXIT_BAD_INPUT = 2  # the user's input: one sentence on stderr
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it
EXIT_INTERRUPTED = 130
USER_FIXABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class UsageError(Exception):
    """A malformed command line (argparse's complaint), reported like any other bad input."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, but never breaks a line inside a hyphenated name (sla-fixmatch, cnn-wide, fashion-mnist)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence and exit code 2 from ``main``, not a usage dump."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if message.startswith("argument ") and ": must be " in message:  # whole_number's bounds, worded as count's
            flag, rest = message[len("argument "):].split(": ", 1)
            message = f"{flag.split('/')[-1]} {rest}"
        raise UsageError(f"{message} (see '{self.prog} --help').")


def error(message: str) -> None:
    print(f"fewlabels: error: {message}", file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr (the library's UserWarnings are sentences for the user, not for a debugger)."""
    print(f"fewlabels: warning: {message}", file=sys.stderr)


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; the user's mistakes and environment become one sentence and an exit code, bugs stay tracebacks."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return command(args)
    except FewLabelsError as exc:
        error(str(exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head` and the like: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush does not fail again
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # disk full, read-only file system, permissions: the user's environment, not a bug
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        error(f"could not write{where}: {exc.strerror}; free space or choose another --out folder.")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # outside the training loop (which stops cleanly by itself)
        print("fewlabels: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a failed or stopped run: say what, keep it short
        from fewlabels.train import TrainingError, TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            print(f"fewlabels: {exc}.", file=sys.stderr)
            return 128 + exc.signum
        if isinstance(exc, TrainingError):
            error(str(exc))
            return EXIT_FAILED
        raise


def parse_assignment(text: str, flag: str) -> tuple[str, object]:
    """``name=value`` with the value read as YAML (numbers, booleans, lists), as in a config file."""
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


def count(value: int, flag: str, bounds: tuple[int, int] | str) -> int:
    """A whole-number flag within its bounds; a TrainConfig field's name stands for that field's bounds (one place)."""
    from fewlabels.train.config import bounds_of, bounds_text

    low, high = bounds_of(bounds) if isinstance(bounds, str) else bounds
    if not low <= value <= high:
        raise FewLabelsError(f"{flag} must be {bounds_text(low, high)}, got {value}.")
    return value


def positive(value: int, flag: str) -> int:
    """A count of at least 1 (and at most the bound of any count, so a 30-digit number is refused, not tried)."""
    from fewlabels.train.config import MAX_SAMPLES

    return count(value, flag, (1, MAX_SAMPLES))


def whole_number(bounds: tuple[int, int] | str) -> Callable[[str], int]:
    """An argparse ``type``: a whole number within ``bounds`` (a TrainConfig field's name stands for that field's
    bounds), refused as the command line is read, before any work; ``.bounds`` says what the flag accepts."""

    def convert(text: str) -> int:
        from fewlabels.train.config import bounds_of, bounds_text

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        low, high = bounds_of(bounds) if isinstance(bounds, str) else bounds
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {bounds_text(low, high)}, got {value}")
        return value

    convert.bounds = bounds  # type: ignore[attr-defined]
    convert.__name__ = "whole number"
    return convert


def add_seed(p: argparse.ArgumentParser, what: str) -> None:
    """``--seed`` with train's bounds (TrainConfig.seed): one declaration for every command that takes a seed."""
    p.add_argument("--seed", type=whole_number("seed"), default=0, metavar="N", help=f"{what} (default 0)")


def add_overwrite(p: argparse.ArgumentParser, what: str = "the output file") -> None:
    """``--overwrite``, declared once for every command that writes a file: it replaces only what fewlabels wrote."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when it already exists and fewlabels wrote it (a file of yours is never replaced)")


def output_file(path: str | os.PathLike, suffix: str, flag: str = "--out", overwrite: bool = False) -> Path:
    """Check an output file can be written before any work, so a typo does not cost an evaluation.

    Missing parent folders are fine (the write creates them); an empty name is refused, not taken as the default.
    An existing file is refused unless fewlabels wrote it and ``overwrite`` is given (``io.check_replaceable``).
    """
    from fewlabels.utils.io import check_replaceable, check_writable_dir

    if not str(path):
        raise FewLabelsError(f"{flag} is empty; give a file name such as out{suffix}.")
    path = Path(path)
    if path.is_dir():
        raise FewLabelsError(f"{flag} must name a file, but {path} is a folder; e.g. {path / ('out' + suffix)}.")
    check_writable_dir(path.parent)
    check_replaceable(path, overwrite, flag)
    return path


def load_run(path: str):
    """A trained model from a run folder or a file written by ``Run.save``."""
    from fewlabels.api import load

    return load(path)


def run_and_data(run_dir: str, dataset: str | None, data_dir: str | None, verb: str):
    """A trained run and the data to use it on (the run's own unless given), refused when the samples do not fit."""
    from fewlabels import data as data_mod

    trained = load_run(run_dir)
    source = data_mod.load(dataset or trained.config.dataset, data_dir or trained.config.data_dir)
    if tuple(source.train.sample_shape) != trained.sample_shape:
        raise FewLabelsError(f"{run_dir} takes samples of shape {trained.sample_shape}, but {source.train.name} has "
                             f"{tuple(source.train.sample_shape)}; {verb} data like its own.")
    return trained, source


def add_run_dir(p: argparse.ArgumentParser, what: str = "a run folder (or a model file saved by Run.save)") -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help=what)


def add_data_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--dataset (the run's own unless given) and --data-dir, for commands that use a run on data."""
    p.add_argument("--dataset", help=what)
    p.add_argument("--data-dir", help="folder holding the dataset's files")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
