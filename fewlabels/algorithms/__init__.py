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
from fewlabels.algorithms.base import Algorithm, Batch, SetupContext, check_context, get, get_class, names, options, register

__all__ = ["Algorithm", "Batch", "SetupContext", "check_context", "get", "get_class", "names", "options", "register"]
