"""``--augment``: which flips and quarter turns the views apply, resolved once before a run and recorded.

``auto`` consults the symmetry analysis (``fewlabels.symmetry``) on this run's split, cached by its
content hash; the choice goes into the config (``augment_choice``), so config.yaml and results.json
record it and a resume reuses it without running the analysis again. ``--hflip``/``--no-hflip`` and
an explicit ``--option group=...`` win over what auto would choose.
"""

from __future__ import annotations

from fewlabels import algorithms
from fewlabels.algorithms import Algorithm
from fewlabels.data import Dataset, Split
from fewlabels.errors import FewLabelsError
from fewlabels.symmetry import choice as choice_mod
from fewlabels.symmetry.transforms import CANDIDATES, DIHEDRAL, needs_square
from fewlabels.train.config import TrainConfig

SLA_ALGORITHMS = ("sla", "sla-fixmatch")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in DIHEDRAL:
            other = f" ({n} is a small warp; the strong view's RandAugment already draws those)" if n in CANDIDATES else ""
            raise FewLabelsError(f"--augment takes auto, hand, all or flips and quarter turns from "
                                 f"{', '.join(DIHEDRAL)}, got '{n}'{other}.")
    return names


def _views(group: tuple[str, ...], hflip: bool) -> tuple[bool, list[tuple[int, bool]] | None]:
    """(hflip, symmetries) for the views: a lone hflip stays the weak view's own flip (as before --augment)."""
    if group == ("hflip",) or not group:
        return bool(group) or hflip, None
    return False, choice_mod.elements(group)


def resolve_augmentation(config: TrainConfig, train: Dataset, split: Split, hflip: bool,
                         algorithm: Algorithm) -> tuple[bool, list[tuple[int, bool]] | None, Algorithm]:
    """(hflip, symmetries, algorithm) for image data; records auto's choice in ``config.augment_choice``."""
    mode = config.augment
    h, w = train.sample_shape[1], train.sample_shape[2]
    if mode == "hand":
        return hflip, None, algorithm
    if mode == "all" or mode not in choice_mod.MODES:
        names = list(choice_mod.ALL) if mode == "all" else _names(mode)
        if h != w:
            names = [n for n in names if not needs_square(n)]
            if mode != "all" and any(needs_square(n) for n in _names(mode)):
                raise FewLabelsError(f"--augment {mode} turns images by 90 degrees, but these are {h}x{w}; "
                                     "leave out rot90, rot270 and the diagonal mirrors.")
        group = choice_mod.generated(names) if h == w else tuple(names)
        if config.hflip is False:  # --no-hflip wins: the largest group left without flips
            group = choice_mod.subgroup_of(set(group) - {"hflip"})
        elif config.hflip is True and "hflip" not in group:
            group = choice_mod.generated([*group, "hflip"]) if h == w else (*group, "hflip")
        _check_sla(algorithm, group)
        return (*_views(group, False), algorithm)
    # auto
    made = config.augment_choice
    if made is None:
        report, cached = choice_mod.analyse_split(train.x, train.y, split.labeled, split.unlabeled, train.classes,
                                                  seed=config.seed)
        made = choice_mod.choose(report, config.hflip, unjudged_hflip=hflip)  # too few labels: the dataset's default
        if config.algorithm in SLA_ALGORITHMS:  # SLA predicts its group: the views leave it out
            name = config.options.get("group") or made.get("sla_group") or getattr(algorithm, "group", None)
            made["sla_group"] = name
            predicted = set(choice_mod.ALL) if name == "rot4-hflip" else set(choice_mod.SLA_GROUPS.get(name, ()))
            made["symmetries"] = list(choice_mod.subgroup_of(set(made["symmetries"]) - predicted))
        made.update(split_hash=report["split_hash"], analysis_seconds=report["seconds"], cached=cached,
                    notes=report["notes"])
        config.augment_choice = made
    group = tuple(made.get("symmetries", ()))
    if config.algorithm in SLA_ALGORITHMS and "group" not in config.options and made.get("sla_group"):
        algorithm = algorithms.get(config.algorithm, **{**config.options, "group": made["sla_group"]})
    _check_sla(algorithm, group)
    return (*_views(group, False), algorithm)


def _check_sla(algorithm: Algorithm, group: tuple[str, ...]) -> None:
    """SLA predicts its transformation: the views must not apply it at random."""
    sla_group = getattr(algorithm, "group", None) if algorithm.name in SLA_ALGORITHMS else None
    overlap = set(choice_mod.SLA_GROUPS.get(sla_group, ())) & set(group)
    if sla_group == "rot4-hflip":
        overlap = set(group)
    if overlap:
        raise FewLabelsError(f"{algorithm.name} predicts the transformations of group '{sla_group}', but the views "
                             f"already apply {', '.join(sorted(overlap))} at random; choose another --option group=... "
                             "or --augment hand.")
