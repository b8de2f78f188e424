"""Every flag of every command, swept with bad values generated from the flag's own declaration.

The parser (``fewlabels.cli.build_parser()``) is walked: each subcommand's argparse actions give the
flag's type, choices, nargs and the name of what it holds (a path, a name, ``KEY=VALUE``). From that,
Hypothesis draws bad values by kind: numbers past the declared bounds (or, where none is declared,
negative, zero and huge), non-finite floats and non-numeric text, near-miss names, malformed pairs,
and for paths a missing path, a user's file where a folder is expected, a user's folder where a file
is expected, an empty string, a place inside read-only ``/proc``, a symlink loop, a path under a file.

Each example runs the command in-process, on a tiny valid base invocation, with ONE flag replaced by
the bad value, in a fresh workspace (the inputs, a planted user file, the working directory) and
checks the promise: the value is taken and the command succeeds (exit 0), or it is refused with exit 2
and exactly one stderr line starting ``fewlabels: error: ``; never a traceback; on a refusal nothing in
the workspace is written, changed or deleted; on success no file that was there before is changed or
deleted (but for merge-labels, whose job is moving the picks into the dataset); never a ``*.tmp`` left.
A bad value may well be legal: the property is "never a traceback, never a lost file", not "always refused".

Short by default (``EXAMPLES`` values per flag and kind, derandomized so CI sees the same ones); set
``FEWLABELS_SWEEP_EXAMPLES=50`` for a longer, random sweep. Failures that others are fixing are listed
in ``BEING_FIXED`` (non-strict xfail); bugs found and not yet owned in ``FOUND`` (strict xfail).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import shutil
import signal
import string
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_bad_input import image_folder, npz, run_main, small_arrays

from fewlabels import data as data_mod
from fewlabels.cli import build_parser, main
from fewlabels.commands import augment_preview, probe
from fewlabels.train.config import MAX_SAMPLES, TrainConfig

LONG = "FEWLABELS_SWEEP_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FEWLABELS_SWEEP_EXAMPLES", "1"))
SECONDS_PER_EXAMPLE = 30  # a bad value taken as a real budget (steps, samples) must not hang CI
READ_ONLY = Path("/proc/fewlabels-sweep")  # read-only even for root
PHASES = list(Phase) if LONG else [Phase.explicit, Phase.generate]  # CI: no shrinking (a failing value is shown as found)

# Failing (command, flag, kind) triples whose fix another helper is landing now (issue 27); non-strict until then.
BEING_FIXED: dict[tuple[str, str, str], str] = {}

# Failures found by this sweep and not yet fixed: strict xfail, so a fix shows up as XPASS and the entry goes.
FOUND: dict[tuple[str, str, str], str] = {}

# Cases that run for minutes instead of failing fast: xfail without running them (no strictness possible).
HANGS: dict[tuple[str, str, str], str] = {}

# Commands that echo what they run on stderr before it runs (by design): their error is the one "fewlabels: error:" line.
ECHOES = {"demo"}

# Whole-number flags with no declared bound of their own (the sweep takes 1..: negative, zero, huge are bad).
NO_DECLARED_BOUND = {("suggest", "--budget")}


# ---------------------------------------------------------------- what the declarations say


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def flag_name(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _config_bounds() -> dict[str, tuple[int, int]]:
    return {f.name: f.metadata["bounds"] for f in dataclasses.fields(TrainConfig) if "bounds" in f.metadata}


def int_bounds(command: str, action: argparse.Action) -> tuple[int, int]:
    """The declared bounds of a whole-number flag: its TrainConfig field's (train, pipeline and the commands that
    reuse train's meaning: --seed, --labels-per-class, --iterations ...), or the command's own constants."""
    own = {("augment-preview", "--n"): (1, augment_preview.MAX_ROWS),
           ("augment-preview", "--strong-views"): (0, augment_preview.MAX_STRONG_VIEWS),
           ("probe", "--seeds"): (1, probe.MAX_SEEDS),
           ("check-labels", "--top"): (1, MAX_SAMPLES)}
    key = (command, flag_name(action))
    if key in own:
        return own[key]
    if key in NO_DECLARED_BOUND:
        return (1, MAX_SAMPLES)
    dest = "iterations" if action.dest.endswith("iterations") else action.dest
    dest = "eval_batch_size" if command in ("evaluate", "predict") and dest == "batch_size" else dest
    bounds = _config_bounds()
    if dest in bounds:
        return bounds[dest]
    raise AssertionError(f"{command} {key[1]} declares no bound; add it to NO_DECLARED_BOUND and report it")


PATH_DESTS = {"out", "json", "data_dir", "run_dir", "resume", "config", "init", "copy_to", "sorted", "labels", "inputs",
              "dataset"}


def known_names(dest: str) -> list[str] | None:
    """The legal names of a name-valued flag, from the registries its help names."""
    from fewlabels import algorithms, models
    from fewlabels.select.strategies import STRATEGIES
    from fewlabels.symmetry.transforms import CANDIDATES

    return {"algorithm": algorithms.names(), "pretrain_algorithm": ["simclr", "byol", "vicreg"],
            "finetune_algorithm": ["softmatch", "fixmatch"], "model": models.names(), "device": ["auto", "cpu", "cuda:0"],
            "strategy": list(STRATEGIES), "dataset": list(data_mod.BUILTIN), "augment": ["auto", "hand", "all", "hflip,rot90"],
            "transformations": list(CANDIDATES)}.get(dest)


def kinds_of(command: str, action: argparse.Action) -> list[str]:
    """The kinds of bad value this flag's declaration calls for."""
    if action.nargs == 0:
        return ["present", "with-value"]
    if action.choices is not None:
        return ["near-miss", "empty"]
    if action.type is int:
        return ["below", "above", "text"]
    if action.type is float:
        return ["nonfinite", "below", "above", "text"]
    if isinstance(action, argparse._AppendAction) and "=" in (action.metavar or ""):
        return ["malformed", "bad-setting"]
    kinds = []
    if action.dest in PATH_DESTS:
        kinds += ["missing", "user-file", "user-folder", "empty", "read-only", "symlink-loop", "under-a-file"]
    if known_names(action.dest) is not None:
        kinds += ["near-miss"] + ([] if "empty" in kinds else ["empty"])
    return kinds or ["text", "empty"]


# ---------------------------------------------------------------- bad values by kind

NAME_CHARS = string.ascii_letters + string.digits + "-_ é"
NAMES = st.text(NAME_CHARS, min_size=1, max_size=10).filter(lambda s: s.strip(". ") != "")
SUFFIXES = st.sampled_from(["", ".json", ".csv", ".npz", ".png", ".html", ".ts", ".txt", ".yaml", ".pt"])
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)  # argv holds no NUL, no surrogates


def _parses_as(kind: type, s: str) -> bool:
    try:
        kind(s)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PathSpec:
    """A bad path, made real inside each example's workspace."""

    kind: str
    name: str
    suffix: str = ""
    content: bytes = b""
    deep: bool = True

    def make(self, ws: Path) -> str:
        leaf = f"{self.name}{self.suffix}"
        if self.kind == "missing":
            return str(ws / "no-such-folder" / leaf)
        if self.kind == "user-file":
            (ws / "user" / leaf).write_bytes(self.content)
            return str(ws / "user" / leaf)
        if self.kind == "user-folder":
            (ws / "user" / leaf).mkdir()
            (ws / "user" / leaf / "mine.txt").write_bytes(self.content or b"the user's own file\n")
            return str(ws / "user" / leaf)
        if self.kind == "read-only":
            return str(READ_ONLY / leaf)
        if self.kind == "symlink-loop":
            return str(ws / "loop" / leaf) if self.deep else str(ws / "loop")
        if self.kind == "under-a-file":
            return str(ws / "user" / "notes.txt" / leaf)
        raise AssertionError(self.kind)


def near_miss(names: list[str]) -> st.SearchStrategy[str]:
    """One edit away from a legal name (a dropped, doubled or changed character, a trailing space, other case)."""
    def edit(name: str, how: int, at: int, ch: str) -> str:
        i = at % max(1, len(name))
        return [name[:i] + name[i + 1:], name[:i] + name[i] + name[i:], name[:i] + ch + name[i + 1:], name + " ",
                " " + name, name.upper(), name + ch][how % 7]
    return st.builds(edit, st.sampled_from(names), st.integers(0, 6), st.integers(0, 20), st.sampled_from("xz-_.0é"))


def pair_strategy(command: str, action: argparse.Action, kind: str) -> st.SearchStrategy[str]:
    prefix = st.sampled_from(["pretrain.", "finetune.", "distill.", "nostage."]) if command == "pipeline" else st.just("")
    if kind == "malformed":
        body = st.sampled_from(["", "=", "noequals", "=1", "lr=", "lr==1", "lr=[", "lr=: :", "lr={", ".=1", "a.b.c.d=1",
                                "options.=1", "lr=1=2", "lr=!!python/object:os.system 1"]) | TEXT
        return body
    if action.dest == "option":
        keys = st.sampled_from(["threshold", "lambda_u", "temperature", "no_such_option", "T"])
    else:
        keys = st.sampled_from([f.name for f in dataclasses.fields(TrainConfig)] + ["options.threshold", "no_such_key"])
    bounds = _config_bounds()

    def bad_value(key: str, pick: int) -> str:
        if key in bounds:
            low, high = bounds[key]
            return [str(low - 1), str(high + 1), "1.5", "[1]", "nan", "''"][pick % 6]
        return ["[1, 2]", "{a: 1}", "nan", "-1e999", "''", "-1", "yes", "1e400"][pick % 8]
    return st.builds(lambda p, k, i: f"{p}{k}={bad_value(k, i)}", prefix, keys, st.integers(0, 7))


def value_strategy(command: str, action: argparse.Action, kind: str) -> st.SearchStrategy:
    """Bad values of ``kind`` for this flag: a string for argv, or a PathSpec made real in the workspace."""
    if kind == "present":
        return st.just(None)
    if kind == "with-value":
        return st.sampled_from(["yes", "1", ""])
    if kind == "empty":
        return st.just("")
    if kind == "near-miss":
        names = list(action.choices) if action.choices is not None else known_names(action.dest)
        return near_miss(names).filter(lambda s: s not in names)
    if kind in ("below", "above", "text") and action.type is int:
        low, high = int_bounds(command, action)
        if kind == "below":
            return st.integers(min_value=low - 10**6, max_value=low - 1) | st.sampled_from([low - 1, -(2**63), -1])
        if kind == "above":
            return st.integers(min_value=high + 1, max_value=high + 10**6) | st.sampled_from([high + 1, 2**63, 10**30])
        return TEXT.filter(lambda s: not _parses_as(int, s) or not low <= int(s) <= high)
    if action.type is float:
        if kind == "nonfinite":
            return st.sampled_from(["nan", "inf", "-inf", "1e999", "-nan", "NaN"])
        if kind == "below":
            return st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr)
        if kind == "above":
            return st.sampled_from(["3.5e38", "1e308"]) | st.floats(min_value=1e6, max_value=1e308).map(repr)
        return TEXT.filter(lambda s: not _parses_as(float, s) or not math.isfinite(float(s)))
    if kind in ("malformed", "bad-setting"):
        return pair_strategy(command, action, kind)
    if kind == "text":
        return TEXT
    suffix = SUFFIXES
    if kind == "user-file":
        return st.builds(PathSpec, st.just(kind), NAMES, suffix, st.binary(max_size=64))
    return st.builds(PathSpec, st.just(kind), NAMES, suffix, st.just(b""), st.booleans())


# ---------------------------------------------------------------- the workspace and the base invocations


@dataclass
class Invocation:
    command: str
    positionals: dict[str, list[str]]
    options: list[tuple[str, str | None]]

    def replaced(self, parser: argparse.ArgumentParser, action: argparse.Action, value: str | None) -> Invocation:
        """Self with ``action`` given ``value`` only (its exclusive partners dropped); an appended flag is added to."""
        if not action.option_strings:
            return Invocation(self.command, {**self.positionals, action.dest: [value]}, self.options)
        drop = set(action.option_strings)
        for group in parser._mutually_exclusive_groups:
            if action in group._group_actions:
                drop |= {s for a in group._group_actions for s in a.option_strings}
        keep = self.options if isinstance(action, argparse._AppendAction) else [o for o in self.options if o[0] not in drop]
        return Invocation(self.command, self.positionals, [*keep, (action.option_strings[-1 if value is None else 0], value)])

    def argv(self, parser: argparse.ArgumentParser) -> list[str]:
        order = [a.dest for a in parser._actions if not a.option_strings]
        options = [flag if value is None else f"{flag}={value}" for flag, value in self.options]
        positionals = [v for dest in order for v in self.positionals.get(dest, [])]
        return [self.command, *options, "--", *positionals] if positionals else [self.command, *options]


def base(command: str, flag: str, ws: Path) -> Invocation:
    """A tiny valid call of ``command`` in workspace ``ws`` (some flags need a base of their own)."""
    out = ws / "out"
    tiny = [("--iterations", "2"), ("--batch-size", "8"), ("--uratio", "1"), ("--eval-every", "2"), ("--checkpoint-every", "2")]
    if command == "train":
        if flag == "--resume":
            return Invocation(command, {}, [("--resume", str(ws / "run")), ("--quiet", None)])
        return Invocation(command, {}, [("--dataset", "digits"), ("--labels-per-class", "2"), *tiny, ("--out", str(out)),
                                        ("--quiet", None)])
    if command == "pipeline":
        if flag == "--resume":
            return Invocation(command, {}, [("--resume", str(ws / "out")), ("--quiet", None)])
        stages = [("--stage", f"{s}.{k}=8" if k == "batch_size" else f"{s}.{k}=1") for s in ("pretrain", "finetune", "distill")
                  for k in ("batch_size", "eval_every")] + [("--stage", "finetune.uratio=1"), ("--stage", "distill.uratio=1")]
        return Invocation(command, {}, [("--dataset", "digits"), ("--labels-per-class", "2"), ("--pretrain-iterations", "1"),
                                        ("--finetune-iterations", "1"), ("--distill-iterations", "1"), *stages,
                                        ("--out", str(out)), ("--quiet", None)])
    if command == "demo":
        return Invocation(command, {}, [("--iterations", "1"), ("--out", str(out))])
    if command == "augment-preview":
        return Invocation(command, {}, [("--dataset", "digits"), ("--n", "2"), ("--strong-views", "1"), ("--out", f"{out}.png")])
    if command == "symmetries":
        # one named candidate: the real analysis, in a second (conftest's stand-in for the auto analysis has no figures)
        return Invocation(command, {}, [("--dataset", "digits"), ("--labels-per-class", "2"), ("--transformations", "hflip"),
                                        ("--out", str(out))])
    run = {"run_dir": [str(ws / "run")]}
    if command == "evaluate":
        return Invocation(command, run, [("--json", f"{out}.json"), ("--batch-size", "64"), ("--quiet", None)])
    if command == "probe":
        return Invocation(command, run, [("--json", f"{out}.json")])
    if command == "embed":
        if flag == "--encoder":  # the positional names the dataset to embed (issue 30)
            return Invocation(command, {"run_dir": [str(ws / "imgs")]}, [("--out", f"{out}.npz")])
        return Invocation(command, run, [("--out", f"{out}.npz")])
    if command == "predict":
        return Invocation(command, {**run, "inputs": [str(ws / "imgs" / "a")]}, [("--out", f"{out}.csv"), ("--quiet", None)])
    if command == "report":
        return Invocation(command, run, [("--out", f"{out}.html"), ("--quiet", None)])
    if command == "export":
        return Invocation(command, run, [("--out", f"{out}.ts")])
    if command == "check-labels":
        return Invocation(command, run, [("--top", "3"), ("--out", f"{out}.csv")])
    if command == "datasets":
        return Invocation(command, {}, [])
    if command == "suggest":
        extra = [("--copy-to", str(ws / "copies"))] if flag == "--link" else []
        return Invocation(command, {}, [("--dataset", str(ws / "imgs")), ("--budget", "2"), ("--out", f"{out}.csv"), *extra])
    if command == "merge-labels":
        if flag in ("--labels", "--out"):
            return Invocation(command, {}, [("--dataset", str(ws / "arrays.npz")), ("--labels", str(ws / "picks.csv")),
                                            ("--out", f"{out}.npz")])
        return Invocation(command, {}, [("--dataset", str(ws / "imgs")), ("--sorted", str(ws / "sorted"))])
    if command == "label":  # --check: every check of a start (folder, --from, port, lock), then exit without serving
        return Invocation(command, {"dataset": [str(ws / "imgs")]}, [("--port", "0"), ("--check", None)])
    raise AssertionError(f"no base invocation for {command}; add one")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """What every workspace starts from: a finished 2-step digits run, an image folder, arrays, picks, a user file."""
    root = tmp_path_factory.mktemp("sweep-template")
    code = main(["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2", "--batch-size", "8",
                 "--uratio", "1", "--eval-every", "2", "--checkpoint-every", "2", "--out", str(root / "run"), "--quiet"])
    assert code == 0
    image_folder(root / "imgs")
    (root / "sorted" / "a").mkdir(parents=True)
    shutil.copy(root / "imgs" / "unlabeled" / "u0.png", root / "sorted" / "a" / "u0.png")
    X, y = small_arrays()
    npz(root / "arrays.npz", X=X, y=y)
    unlabeled = int(np.flatnonzero(y == -1)[0])
    (root / "picks.csv").write_text(f"rank,sample,label\n1,{unlabeled},1\n")
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("the user's own notes; nothing may touch them\n")
    (root / "cwd").mkdir()
    return root


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files by content hash, folders and symlinks by what they are (links not followed)."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                entries[rel] = "link -> " + os.readlink(p)
            elif p.is_dir():
                entries[rel] = "folder"
            else:
                entries[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return entries


class TookTooLong(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def fire(signum, frame):
        raise TookTooLong(f"ran past {seconds} s: a bad value was taken as a real budget")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def digits_for_the_demo(command: str):
    """demo falls back to digits where Fashion-MNIST is absent: make it absent, so a demo example takes a second."""
    if command != "demo":
        yield
        return
    real = data_mod.where
    with mock.patch.object(data_mod, "where", lambda name, data_dir=None: None if name == "fashion-mnist" else real(name, data_dir)):
        yield


def diverged(code: int, err: str) -> bool:
    """Exit 1 is a run that started and failed (a loss became NaN): a legal, absurd number (--lr 1e300) may end so."""
    lines = err.strip().splitlines()
    return code == 1 and len(lines) == 1 and lines[0].startswith("fewlabels: error: Loss ") and "became" in lines[0]


def check_example(command: str, parser: argparse.ArgumentParser, action: argparse.Action, value, template: Path, capsys) -> None:
    ws = Path(tempfile.mkdtemp(prefix="sweep-", dir=template.parent))
    try:
        for name in ("run", "imgs", "sorted", "arrays.npz", "picks.csv", "user", "cwd"):
            (shutil.copytree if (template / name).is_dir() else shutil.copy)(template / name, ws / name)
        (ws / "loop").symlink_to(ws / "loop")
        text = value.make(ws) if isinstance(value, PathSpec) else value
        argv = base(command, flag_name(action), ws).replaced(parser, action, text).argv(parser)
        before = tree(ws)
        cwd = os.getcwd()
        os.chdir(ws / "cwd")  # default outputs (runs/..., symmetries/, augment-preview.png) land in the workspace
        try:
            with time_limit(SECONDS_PER_EXAMPLE), digits_for_the_demo(command):
                code, out, err = run_main(argv, capsys)
        finally:
            os.chdir(cwd)
        after = tree(ws)
        shown = f"{' '.join(map(str, argv))}\nexit {code}\nstderr: {err[-3000:]}"
        assert "Traceback" not in err and "Traceback" not in out, shown
        assert [p for p in after if p.endswith(".tmp")] == [], shown
        if code == 2:
            lines = err.splitlines()
            if command in ECHOES:  # what it runs, echoed first by design; the error is still one line, the last
                lines = [line for line in lines if line.startswith("fewlabels")]
                lines = lines[-1:] if lines[:-1] and all(not x.startswith("fewlabels: error") for x in lines[:-1]) else lines
                lines = [x for x in lines if not x.startswith("fewlabels pipeline ") and not x.startswith("fewlabels train ")]
            assert len(lines) == 1 and lines[0].startswith("fewlabels: error: "), shown
            assert after == before, f"a refusal wrote, changed or deleted: {sorted(set(after.items()) ^ set(before.items()))}\n{shown}"
            return
        assert code == 0 or diverged(code, err), shown
        moved_by_design = ("imgs/", "sorted/") if command == "merge-labels" else ()
        lost = [p for p, h in before.items() if after.get(p) != h and not p.startswith(moved_by_design)]
        assert lost == [], f"a file that was there before was changed or deleted: {lost}\n{shown}"
    finally:
        shutil.rmtree(ws, ignore_errors=True)


# ---------------------------------------------------------------- the sweep

PARSERS = subparsers()


def _params() -> list:
    params = []
    for command, parser in PARSERS.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            for kind in kinds_of(command, action):
                key = (command, flag_name(action), kind)
                marks = []
                if key in HANGS:
                    marks.append(pytest.mark.xfail(run=False, reason=f"BUG (runs for minutes): {HANGS[key]}"))
                elif key in FOUND:
                    marks.append(pytest.mark.xfail(strict=True, reason=f"BUG: {FOUND[key]}"))
                elif key in BEING_FIXED:
                    marks.append(pytest.mark.xfail(strict=False, reason=f"being fixed (issue 27): {BEING_FIXED[key]}"))
                params.append(pytest.param(command, flag_name(action), kind, id=f"{command} {flag_name(action)} {kind}",
                                           marks=marks))
    return params


SWEEP = _params()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("command,flag,kind", SWEEP)
def test_a_bad_value_is_taken_or_refused_in_one_sentence_and_loses_nothing(command, flag, kind, template, capsys):
    parser = PARSERS[command]
    action = next(a for a in parser._actions if flag_name(a) == flag)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
              suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(value=value_strategy(command, action, kind))
    def sweep(value) -> None:
        check_example(command, parser, action, value, template, capsys)

    sweep()


def test_every_flag_of_every_command_is_swept():
    """A new command or flag joins the sweep by itself; this fails only when one has no base invocation or kind."""
    swept = {(p.values[0], p.values[1]) for p in SWEEP}
    for command, parser in PARSERS.items():
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                assert (command, flag_name(action)) in swept
        base(command, "", Path("/nowhere"))  # raises for a command with no base invocation
    for key in {**FOUND, **BEING_FIXED, **HANGS}:
        assert key in {tuple(p.values) for p in SWEEP}, f"stale entry {key}"

