"""Every algorithm's options are declared once (``options = {name: Option(rule, help)}``), and everything reads them.

A declaration without an ``__init__`` parameter, or a parameter without a declaration, fails at
import (and here, for every registered algorithm); every default passes its own rule; a bad value
and an unknown name are refused in one sentence from the declaration; the table in docs/algorithms.md and
``--option``'s help are written from it.
"""

from __future__ import annotations

import pytest

from fewlabels import algorithms
from fewlabels.algorithms import Algorithm
from fewlabels.algorithms.components import readme_table
from fewlabels.algorithms.components.options import FLAG, UNIT, Option, init_parameters, or_empty
from fewlabels.errors import FewLabelsError


@pytest.mark.parametrize("name", algorithms.names())
def test_every_option_is_declared_and_every_declaration_is_an_option(name):
    cls = algorithms.get_class(name)
    assert set(cls.options) == set(init_parameters(cls.__init__))
    assert set(cls.options) == set(algorithms.options(name))
    for option in cls.options.values():
        assert isinstance(option, Option) and option.help and option.rule.allowed


@pytest.mark.parametrize("name", algorithms.names())
def test_every_default_passes_its_own_rule(name):
    cls = algorithms.get_class(name)
    for option, default in algorithms.options(name).items():
        assert cls.options[option].rule.accepts(default), (name, option, default)


@pytest.mark.parametrize("name", algorithms.names())
def test_a_bad_value_of_any_option_is_refused_naming_it(name):
    for option in algorithms.options(name):
        with pytest.raises(FewLabelsError) as refused:
            algorithms.get(name, **{option: [7]})  # a list passes no rule
        sentence = str(refused.value)
        assert sentence.startswith(f"{name}: ") and option in sentence and "[7]" in sentence, sentence


def test_an_undeclared_parameter_or_an_unused_declaration_fails_when_the_class_is_made():
    with pytest.raises(TypeError, match=r"\['threshold'\] have no declaration"):
        class Undeclared(Algorithm):
            def __init__(self, threshold: float = 0.9) -> None:
                super().__init__()

    with pytest.raises(TypeError, match=r"declarations \['lambda_u'\] are no parameter"):
        class Unused(Algorithm):
            options = {"threshold": Option(UNIT, "t"), "lambda_u": Option(UNIT, "w")}

            def __init__(self, threshold: float = 0.9) -> None:
                super().__init__()


def test_the_declaration_checks_direct_construction_too_with_did_you_mean():
    class Small(Algorithm):
        name = "small"
        options = {"threshold": Option(UNIT, "t"), "soft": Option(FLAG, "s"), "rate": Option(or_empty(UNIT, "the default"), "r")}

        def __init__(self, threshold: float = 0.9, soft: bool = False, rate: float | None = None) -> None:
            super().__init__()
            self.threshold, self.soft, self.rate = threshold, soft, rate

    assert Small(0.5, True, None).hparams() == {"threshold": 0.5, "soft": True, "rate": None}
    with pytest.raises(FewLabelsError, match=r"^small: threshold must be in \(0, 1\], got 2\.$"):
        Small(2)
    with pytest.raises(FewLabelsError, match=r"^small: soft must be true or false, got 'yes'\.$"):
        Small(soft="yes")
    with pytest.raises(FewLabelsError, match=r"rate must be in \(0, 1\] \(or empty for the default\), got 0"):
        Small(rate=0)
    with pytest.raises(FewLabelsError, match=r"^small has no option 'treshold': did you mean 'threshold'\? its options are "):
        Small(treshold=0.5)


def test_unknown_option_names_get_the_closest_declared_one():
    with pytest.raises(FewLabelsError, match=r"daso has no option 'queue': did you mean 'queue_size'\?"):
        algorithms.get("daso", queue=3)
    with pytest.raises(FewLabelsError, match=r"supervised has no option 'threshold': its options are none\."):
        algorithms.get("supervised", threshold=0.9)


def test_the_readme_options_table_is_written_from_the_declarations():
    text = readme_table.with_table(readme_table.TABLE_FILE.read_text(encoding="utf-8"))
    assert readme_table.main(["--check"]) == 0, "the options table is stale: python -m fewlabels.algorithms.components.readme_table"
    for name in algorithms.names():
        for option, declared in algorithms.get_class(name).options.items():
            assert f"| `{name}` | `{option}` |" in text and declared.help in text


def test_the_option_flag_help_names_every_algorithms_options():
    from fewlabels.commands import train

    text = train._registry_help("options")
    for name in algorithms.names():
        assert f"{name}: {', '.join(algorithms.options(name)) or 'none'}" in text
