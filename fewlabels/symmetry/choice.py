"""From verdicts to views: which square symmetries the weak/strong views may apply, and SLA's group.

The views may apply a subgroup of the square's symmetries (D4): the largest one all of whose
non-identity elements keep the label or are already symmetric; an "uncertain" verdict is left out (the
safe way: a label-changing flip in the views teaches wrong labels, a missing one only forgoes some
augmentation), and ``describe`` says so and names the ``--augment`` that decides. SLA predicts the transformation,
so its group must be distinguishable and disjoint from what the views apply at random.
The analysis runs once per data split: its report is cached by a content hash of the split.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewlabels.symmetry.analysis import CHANGES, FORMAT, KEEPS, NOT_JUDGED, SYMMETRIC, UNCERTAIN, UNKNOWN, analyse, labels_subsample
from fewlabels.symmetry.transforms import DIHEDRAL

IDENTITY = (0, False)
# the subgroups of D4 by their non-identity elements, largest first (ties: the one with hflip first)
SUBGROUPS: list[tuple[str, ...]] = [
    ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose"),
    ("hflip", "vflip", "rot180"),
    ("rot90", "rot180", "rot270"),
    ("transpose", "antitranspose", "rot180"),
    ("hflip",), ("vflip",), ("rot180",), ("transpose",), ("antitranspose",),
    (),
]
# SLA's groups (fewlabels.augment.GROUPS) by their non-identity elements, in order of preference
SLA_GROUPS: dict[str, tuple[str, ...]] = {
    "rot4": ("rot90", "rot180", "rot270"),
    "rot2": ("rot180",),
    "hflip": ("hflip",),
}
ALL = SUBGROUPS[0]
MODES = ("auto", "hand", "all")


def subgroup_of(allowed: set[str]) -> tuple[str, ...]:
    """The largest subgroup of D4 whose non-identity elements are all in ``allowed``."""
    return next(g for g in SUBGROUPS if set(g) <= allowed)


def generated(names: list[str]) -> tuple[str, ...]:
    """The smallest listed subgroup holding every name (e.g. rot90 -> all quarter turns)."""
    return next(g for g in reversed(SUBGROUPS) if set(names) <= set(g))


def elements(names: tuple[str, ...]) -> list[tuple[int, bool]]:
    """(turns, mirror) of the identity and the named elements: what the views draw from."""
    return [IDENTITY] + [DIHEDRAL[n] for n in names]


def choose(report: dict[str, Any], hflip: bool | None = None, unjudged_hflip: bool = False) -> dict[str, Any]:
    """The views' subgroup and SLA's group from a report; ``hflip`` (True/False), when given, overrides the verdict on it;
    ``unjudged_hflip``: keep hflip when too few labels left it unjudged (the dataset's own default)."""
    verdicts = {c["name"]: c["verdict"] for c in report["candidates"]}
    keep = {n for n, v in verdicts.items() if n in DIHEDRAL and v in (KEEPS, SYMMETRIC)}
    if unjudged_hflip and verdicts.get("hflip") in (UNKNOWN, NOT_JUDGED):
        keep.add("hflip")
    if hflip is True:
        keep.add("hflip")
    elif hflip is False:
        keep.discard("hflip")
    group = subgroup_of(keep)
    if hflip is True:  # the user asked for flips: the largest kept group that has them
        group = next(g for g in SUBGROUPS if "hflip" in g and set(g) <= keep)
    distinct = {n for n, v in verdicts.items() if n in DIHEDRAL and v in (CHANGES, KEEPS)} - set(group)
    sla = next((name for name, members in SLA_GROUPS.items() if set(members) <= distinct), None)
    uncertain = [n for n, v in verdicts.items() if n in DIHEDRAL and v == UNCERTAIN and n not in group]
    rows = {c["name"]: c for c in report["candidates"]}
    return {"symmetries": list(group), "sla_group": sla, "uncertain": uncertain,
            "uncertain_why": {n: why_uncertain(rows[n]) for n in uncertain},
            "verdicts": {n: v for n, v in verdicts.items()}}


def why_uncertain(row: dict[str, Any]) -> str:
    """A few words on why a candidate is "uncertain": the resamples split (how), or every resample found too few
    labels to tell (what the console line says instead of one fixed excuse)."""
    votes = row.get("votes") or {}
    if votes and max(votes, key=votes.get) != UNCERTAIN:
        total = sum(votes.values())
        return "resamples disagree: " + ", ".join(f"{n} of {total} {v}" for v, n in votes.items())
    return "too few labels to rule out a swap of classes" if "too few labels" in row.get("reason", "") else \
        "the evidence is thin"


def split_hash(x: torch.Tensor, labeled: np.ndarray, unlabeled: np.ndarray, y: torch.Tensor, seed: int) -> str:
    """A content hash of the split the analysis sees: the labeled images and labels and the unlabeled images."""
    h = hashlib.sha256(f"symmetries-v{FORMAT}-seed{seed}-{tuple(x.shape[1:])}".encode())
    for part in (x[torch.as_tensor(labeled, dtype=torch.long)], y[torch.as_tensor(labeled, dtype=torch.long)],
                 x[torch.as_tensor(unlabeled, dtype=torch.long)]):
        h.update(np.ascontiguousarray(part.cpu().numpy()).tobytes())
    return h.hexdigest()[:24]


def cache_dir() -> Path:
    return Path(os.environ.get("FEWLABELS_CACHE", Path.home() / ".cache" / "fewlabels")) / "symmetries"


def analyse_split(x: torch.Tensor, y: torch.Tensor, labeled: np.ndarray, unlabeled: np.ndarray, classes: list[str],
                  seed: int = 0, use_cache: bool = True) -> tuple[dict[str, Any], bool]:
    """The report for a split (from the cache when there), and whether it came from the cache.

    The cache file is written whole (temp file, then rename), so concurrent runs read an old
    or a new file, never half of one; two runs that miss at once both compute the same report.
    """
    key = split_hash(x, labeled, unlabeled, y, seed)
    path = cache_dir() / f"{key}.json"
    if use_cache and path.is_file():
        try:
            report = json.loads(path.read_text())
            if report.get("format") == FORMAT:
                return report, True
        except (OSError, ValueError):
            pass  # unreadable: compute again and replace it
    pool = x[torch.as_tensor(unlabeled if len(unlabeled) else labeled, dtype=torch.long)]
    labeled = np.asarray(labeled)
    if len(labeled):  # only the labels the analysis uses are copied (all 60,000 would cost a copy of the data set)
        labeled = labeled[labels_subsample(np.asarray(y[torch.as_tensor(labeled, dtype=torch.long)]), seed)]
    lab = torch.as_tensor(labeled, dtype=torch.long)
    report = analyse(pool, x[lab], y[lab], classes, seed=seed, progress=say)
    report["split_hash"] = key
    if use_cache:
        try:
            from fewlabels.utils.io import atomic_write_json

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, report)
        except OSError:
            pass  # a read-only home: the analysis is only redone next time
    return report, False


def say(line: str) -> None:
    """The analysis's time estimate and progress, on stderr (stdout stays the command's own output)."""
    print(line, file=sys.stderr, flush=True)


def describe(choice: dict[str, Any]) -> str:
    """One line for the console."""
    sym = ", ".join(choice["symmetries"]) or "no flips or quarter turns"
    sla = f"; label augmentation (sla, sla-fixmatch) would predict {choice['sla_group']}" if choice.get("sla_group") else ""
    unsure = choice.get("uncertain") or []
    why = choice.get("uncertain_why") or {}  # absent in choices recorded before it was kept
    groups: dict[str, list[str]] = {}
    for n in unsure:
        groups.setdefault(why.get(n, "too few labels to judge"), []).append(n)
    said = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in groups.items())
    left = (f"; left out as uncertain: {said}; --augment {','.join([*choice['symmetries'], *unsure])} "
            "uses them") if unsure else ""
    return f"augment auto: views use {sym} (plus pad-and-crop and RandAugment){sla}{left}"
