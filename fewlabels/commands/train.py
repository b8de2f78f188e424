"""``fewlabels train``: its flags are built from ``TrainConfig``'s fields, so a new setting gets a flag by itself.

A field's ``metadata`` gives its help (and ``choices``; ``cli=False`` leaves it out); its type gives the
flag's type. A bool that is on by default gets ``--no-NAME``, one that is off ``--NAME``, and one that
is None (decided later) both. ``options`` is the repeatable ``--option NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

import yaml

from fewlabels.commands.common import OneLineParser, parse_assignment
from fewlabels.errors import FewLabelsError

NAME = "train"
HELP = "train a classifier from a few labels and unlabeled data"
EXCLUSIVE = ("labels_per_class", "num_labels")  # one or the other: a total gives way to per class
METAVAR = {"dataset": "NAME|PATH", "data_dir": "DIR", "out": "DIR", "algorithm": "NAME", "model": "NAME", "device": "DEVICE",
           int: "N", float: "X", str: "TEXT"}


def _registry_help(name: str) -> str:
    """The real choices, from the registries (so help never goes stale)."""
    if name == "algorithm":
        from fewlabels import algorithms

        return "; one of " + ", ".join(algorithms.names())
    if name == "options":
        from fewlabels import algorithms

        return f" ({algorithms.options_help()})"
    if name == "model":
        from fewlabels import models

        images = [m for m in models.names() if m in models.IMAGE_MODELS]
        features = [m for m in models.names() if m not in models.IMAGE_MODELS]
        return f": {', '.join(images)} (images) or {', '.join(features)} (feature vectors)"
    if name == "dataset":
        from fewlabels import data

        return f" (built-in: {', '.join(data.BUILTIN)})"
    return ""


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; ``dict[str, Any]`` -> dict; other annotations as they are."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return typing.get_origin(hint) or hint


def _yaml_value(text: str) -> Any:
    return parse_assignment(f"value={text}", "--set")[1]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def config_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that have a flag."""
    from fewlabels.train import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def flag_of(name: str, value: Any = None) -> str:
    """The flag that sets field ``name`` to ``value`` (``--no-hflip`` for hflip=False)."""
    if name == "options":
        return "--option"
    field = {f.name: f for f in config_fields()}.get(name)
    negative = field is not None and value is False and _default(field) is not False
    return f"--{'no-' if negative else ''}{name.replace('_', '-')}"


def add_config_flags(p: argparse.ArgumentParser) -> None:
    from fewlabels.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    exclusive = p.add_mutually_exclusive_group()
    for f in config_fields():
        default, kind = _default(f), _base_type(hints[f.name])
        text = (f.metadata.get("help", "") + _registry_help(f.name)).replace("%", "%%")
        where = exclusive if f.name in EXCLUSIVE else p
        flag = flag_of(f.name)
        if f.name == "options":
            p.add_argument("--option", action="append", metavar="NAME=VALUE",
                           help=f"{text}, e.g. --option threshold=0.9 (repeatable); see 'Algorithms' in the README")
        elif kind is bool and default is None:
            where.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=text)
        elif kind is bool:
            where.add_argument(flag_of(f.name, not default), dest=f.name, action="store_const", const=not default,
                               help=f"{text}: {'off' if default else 'on'} (default {'on' if default else 'off'})")
        else:
            if default is not None and "default" not in text:
                text += f" (default {default})"
            convert = kind if kind in (int, float, str) else _yaml_value
            choices = f.metadata.get("choices")
            where.add_argument(flag, dest=f.name, type=convert, choices=choices, help=text,
                               metavar=None if choices else METAVAR.get(f.name, METAVAR.get(kind, "VALUE")))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of settings (keys as in a run's config.yaml); flags override it")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set lr=0.01 or --set options.threshold=0.9 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    add_config_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    add_arguments(sub.add_parser(NAME, help=HELP, description=HELP, argument_default=argparse.SUPPRESS))


def parser() -> argparse.ArgumentParser:
    """The train command's parser on its own (for ``demo`` and tests)."""
    p = OneLineParser(prog="fewlabels train", description=HELP, argument_default=argparse.SUPPRESS)
    add_arguments(p)
    return p


def _load_config_file(path: str) -> dict:
    from pathlib import Path

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FewLabelsError(f"Cannot read config file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise FewLabelsError(f"Config file {path} is not text (not UTF-8); give a YAML file of settings.") from None
    except yaml.YAMLError as exc:
        raise FewLabelsError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise FewLabelsError(f"Config file {path} must be a mapping of settings, got a {type(loaded).__name__}.")
    return loaded


def settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set by flags (``--option`` as ``options``), in command-line order."""
    names = {f.name for f in config_fields()}
    given = vars(args)
    settings = {k: v for k, v in given.items() if k in names and k != "options"}
    if "option" in given:
        settings["options"] = dict(parse_assignment(o, "--option") for o in given["option"])
    return settings


def config_from_args(args: argparse.Namespace):
    """Defaults, then --config, then flags, then --set: the last word wins."""
    from pathlib import Path

    from fewlabels import algorithms, data
    from fewlabels.data.split import default_labels_per_class
    from fewlabels.train import TrainConfig

    given = vars(args)
    settings: dict = _load_config_file(given["config"]) if "config" in given else {}
    try:
        TrainConfig.from_dict(settings)  # unknown keys are refused here, with the closest valid one
    except FewLabelsError as exc:
        raise FewLabelsError(f"{given['config']}: {exc}") from None
    for name, value in settings_given(args).items():
        settings[name] = {**settings.get("options", {}), **value} if name == "options" else value
    for text in given.get("set", []):
        key, value = parse_assignment(text, "--set")
        if key.startswith("options."):
            settings["options"] = {**settings.get("options", {}), key.split(".", 1)[1]: value}
        else:
            settings[key] = value
    config = TrainConfig.from_dict(settings)
    config.validate()
    if config.out is None:
        name = Path(config.dataset).stem if ("/" in config.dataset or config.dataset.endswith(".npz")) else config.dataset
        algorithm = config.algorithm or _default_algorithm(config.dataset)
        lpc = config.labels_per_class
        if lpc is None and config.num_labels is None and config.dataset in data.BUILTIN:  # fully labeled: the experiment's
            lpc, _ = default_labels_per_class([0], None, None, algorithm != "auto" and algorithms.get(algorithm).uses_unlabeled)
        config.out = f"runs/{name}-{algorithm}-{labels_tag(lpc, config.num_labels)}-s{config.seed}"
    return config


def _default_algorithm(dataset: str) -> str:
    """The algorithm a run of ``dataset`` will get, for its folder name: known for the (image) built-ins, else 'auto'."""
    from fewlabels import algorithms, data

    return algorithms.default_for((1, 28, 28)) if dataset in data.BUILTIN else "auto"


def labels_tag(labels_per_class: int | None, num_labels: int | None) -> str:
    """The labels part of a default run folder name: 4pc, 40l, or 'given' (the data decides)."""
    if labels_per_class is not None:
        return f"{labels_per_class}pc"
    return f"{num_labels}l" if num_labels is not None else "given"


def print_results(results: dict, out: str) -> None:
    print(f"{results['algorithm']} on {results['dataset']} with {results['num_labeled']} labels, "
          f"{results['iterations']} iterations in {results['wall_time_s'] / 60:.1f} min")
    if results.get("test_accuracy") is not None:
        print(f"final test accuracy (EMA model): {results['test_accuracy']:.4f}")
    for warning in results.get("warnings", []):
        print(f"warning: {warning}")
    print(f"run written to {out}")


def run(args: argparse.Namespace) -> int:
    from fewlabels.train import resume, train

    given = vars(args)
    quiet = given.get("quiet", False)
    if "resume" in given:
        names = {f.name for f in config_fields()}
        extra = [flag_of(k, v) if k in names else f"--{k}" for k, v in given.items() if k in names or k in ("config", "set", "option")]
        if extra:
            raise FewLabelsError(f"--resume continues a run with its saved settings; drop {extra[0]}.")
        results = resume(given["resume"], progress=not quiet)
        if results.pop("already_finished", False):  # exit 0: the run is where --resume would take it
            print(f"{given['resume']} is a finished run ({results.get('iterations')} iterations); nothing to resume, "
                  "nothing changed.")
            return 0
        if results:  # under torchrun only rank 0 reports
            print_results(results, given["resume"])
        return 0
    config = config_from_args(args)
    results = train(config, progress=not quiet, overwrite=given.get("overwrite", False))
    if results:
        print_results(results, config.out)
    return 0
