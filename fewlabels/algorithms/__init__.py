"""Algorithms by name: ``fewlabels.algorithms.get("fixmatch", threshold=0.9)``."""

from fewlabels.algorithms import (  # noqa: F401  (importing a module registers its algorithm)
    barlowtwins,
    byol,
    coteaching,
    daso,
    distill,
    elr,
    fixmatch,
    flexmatch,
    freematch,
    labelprop,
    logitadjust,
    meanteacher,
    mixmatch,
    mocov3,
    pimodel,
    pseudolabel,
    remixmatch,
    saa,
    shrinkmatch,
    simclr,
    simmatch,
    sla,
    softmatch,
    supcon,
    supervised,
    uda,
    vat,
    vicreg,
)
from fewlabels.algorithms.components import options as _declared
from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, check_context, get, get_class, names, options, register


def default_for(sample_shape: tuple[int, ...]) -> str:
    """The algorithm a run gets when none is named: FixMatch for images, label propagation for feature vectors.

    Feature vectors have no label-keeping augmentation to be consistent under, but (an embedding,
    a table) their neighbourhoods carry the classes: bench/features.py measures labelprop ahead of
    FixMatch and of scikit-learn's semi-supervised estimators there.
    """
    return "fixmatch" if len(sample_shape) == 3 else "labelprop"


def options_help() -> str:
    """Every algorithm's option names in one line, from their declarations (``--option``'s help)."""
    return _declared.options_help({name: get_class(name) for name in names()})


__all__ = ["default_for", "options_help", "Algorithm", "Batch", "SetupContext", "check_context", "get", "get_class", "names",
           "options", "register"]
