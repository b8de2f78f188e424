"""Each algorithm's options, declared once: what values each takes, and what it means.

An algorithm class lists its options in ``options = {"threshold": Option(UNIT, "..."), ...}``, one
entry per ``__init__`` parameter (the default stays in the signature). From that one declaration
come the check of every value (one sentence naming the algorithm, the option, what it must be and
the value given), the refusal of an unknown name with the closest known one, the ``--option`` help
and the README's options table (``options_table``). ``Algorithm.__init_subclass__`` refuses, at
import, a class whose declarations and ``__init__`` parameters differ, so neither can go stale.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fewlabels.errors import FewLabelsError


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))


def _real(value: Any) -> bool:
    """A number that is not a boolean (True would pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """The values an option accepts: a test, and the same in words ("in (0, 1]") for the sentence and the table."""

    allowed: str
    accepts: Callable[[Any], bool]
    refuse: Callable[[str, str, Any], None] | None = None  # a sentence of its own (e.g. with a did-you-mean)

    def check(self, algorithm: str, name: str, value: Any) -> None:
        if self.accepts(value):
            return
        if self.refuse is not None:
            self.refuse(algorithm, name, value)
        raise FewLabelsError(f"{algorithm}: {name} must be {self.allowed}, got {value!r}.")


UNIT = Rule("in (0, 1]", lambda v: _number(v) and 0.0 < v <= 1.0)  # thresholds
CLOSED_UNIT = Rule("in [0, 1]", lambda v: _number(v) and 0.0 <= v <= 1.0)
MOMENTUM = Rule("in [0, 1)", lambda v: _real(v) and 0.0 <= v < 1.0)  # moving averages: 1 would freeze them for ever
FRACTION = Rule("a fraction of the run in [0, 1]", lambda v: _real(v) and 0.0 <= v <= 1.0)  # ramp-up lengths
NON_NEGATIVE = Rule("0 or more", lambda v: _number(v) and v >= 0)  # loss weights
POSITIVE = Rule("greater than 0", lambda v: _number(v) and v > 0)  # temperatures, step sizes
COUNT = Rule("a whole number of at least 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
FLAG = Rule("true or false", lambda v: isinstance(v, bool))
RUN_FOLDER = Rule("a run folder path", lambda v: isinstance(v, str))


def choice(values: tuple[str, ...], allowed: str | None = None) -> Rule:
    """One of a few words; ``allowed`` says them in the sentence's own way where the default reads badly."""
    if allowed is None:
        quoted = [repr(v) for v in values]
        allowed = " or ".join(quoted) if len(quoted) == 2 else "one of " + ", ".join(quoted)
    return Rule(allowed, lambda v: isinstance(v, str) and v in values)


def or_empty(rule: Rule, meaning: str) -> Rule:
    """``rule``, or None (empty) for a value decided at setup, e.g. co-teaching's forget rate from the noise rate."""
    return Rule(f"{rule.allowed} (or empty for {meaning})", lambda v: v is None or rule.accepts(v))


@dataclass(frozen=True)
class Option:
    """One option of an algorithm: its rule and what it does (the default is the ``__init__`` parameter's)."""

    rule: Rule
    help: str


# options of the same meaning in many algorithms, declared here once
THRESHOLD = Option(UNIT, "confidence a prediction needs to become a pseudo-label")
LAMBDA_U = Option(NON_NEGATIVE, "weight of the unlabeled loss")
RAMPUP = Option(FRACTION, "part of the run over which the unlabeled weight ramps up")
DA_MOMENTUM = Option(MOMENTUM, "momentum of distribution alignment's running class distribution")


def init_parameters(init: Callable[..., Any]) -> dict[str, Any]:
    """The named parameters of an ``__init__`` with their defaults (``self`` left out)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(init).parameters
    return {k: p.default for k, p in params.items() if k != "self" and p.kind in named}


def check_declared(cls: type, declared: Mapping[str, Option]) -> None:
    """Refuse (at import) a class whose ``__init__`` takes an undeclared option, or declares one it does not take."""
    taken = set(init_parameters(cls.__init__))
    missing, unused = sorted(taken - set(declared)), sorted(set(declared) - taken)
    if missing or unused:
        raise TypeError(f"{cls.__name__}: options {missing} have no declaration in its 'options', "
                        f"and declarations {unused} are no parameter of its __init__.")


def refuse_unknown(algorithm: str, given: Mapping[str, Any], declared: Mapping[str, Option]) -> None:
    """An unknown option name, refused with the closest known one."""
    for key in given:
        if key not in declared:
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            listing = ", ".join(declared) if declared else "none"
            raise FewLabelsError(f"{algorithm} has no option '{key}': {hint}its options are {listing}.")


def check_values(algorithm: str, values: Mapping[str, Any], declared: Mapping[str, Option]) -> None:
    """Every value against its declaration, in the order given (the signature's); the first that fails is the sentence."""
    for name, value in values.items():
        if name in declared:
            declared[name].rule.check(algorithm, name, value)


def _cell(value: Any) -> str:
    """A default as a README cell: empty for None, true/false, numbers in their short form."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`" if value != "" else "`''`"


def options_table(classes: Mapping[str, type]) -> str:
    """The README's options table: every option of every algorithm, its default, what it accepts and means."""
    rows = ["| algorithm | option | default | accepts | meaning |", "|---|---|---|---|---|"]
    for name, cls in classes.items():
        for option, default in init_parameters(cls.__init__).items():
            declared = cls.options[option]
            rows.append(f"| `{name}` | `{option}` | {_cell(default)} | {declared.rule.allowed} | {declared.help} |")
        if not cls.options:
            rows.append(f"| `{name}` | — | | | |")
    return "\n".join(rows) + "\n"


def options_help(classes: Mapping[str, type]) -> str:
    """The option names of every algorithm (in its signature's order), in one line for ``--option``'s help."""
    return "; ".join(f"{name}: {', '.join(init_parameters(cls.__init__)) or 'none'}" for name, cls in classes.items())
