"""From scores to a verdict per candidate, and from the resamples' verdicts to one, with its uncertainty.

**Verdict**, the rule applied to the full data and to each resample, weighing evidence by how much
data stands behind it:

1. Distinguishability near chance (thousands of unlabeled images, a spread of about 0.01): the data
   is *already symmetric* under g, and g keeps the label unless it permutes classes (two mirror-image
   classes). A permutation shows as the labels' held-out classifier, right for x, losing most of its
   margin over chance for g(x) (``RETAINED_BELOW``); a collision alone, from a judge of 40 labels, does
   not override the label-free score, and below ``MIN_FOLDS`` folds or ``SKILL_ABOVE`` the verdict is
   *uncertain*.
2. Otherwise (distinguishable): *changes the label* when a collision counts, the judge's agreement
   is low, or invariance costs one class most of its accuracy; else *keeps the label*. The held-out
   log-likelihood's change is reported, not used: it mixes calibration with label change (a linear
   classifier made invariant to flipping left-facing shoes is less sure of every shoe without getting
   more of them wrong: Fashion-MNIST's hflip cost 0.2-0.9 nats at 4-50 labels per class). From ``MEASURED_FROM`` labels per
   class a collision counts only where most resamples' judges find it (the judge never saw g(x), and
   a pair that some resamples' judges confuse is their noise: Fashion-MNIST's mirrored sneakers read as
   sandals by 4 of 12 judges of 50 labels per class); with fewer labels per class the held-out costs of
   invariance are not used (the judge's agreement and collisions decide).
3. The verdict is the one at least ``CONFIDENT`` of the resamples that judge give, where more than half
   judge (a resample with too few labels to judge abstains; it does not contradict); where they
   disagree, it is *uncertain*, and ``--augment auto`` leaves g out of the views (``choice.choose``).

Without 2 labels per class only the label-free score is given (and said).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

KEEPS, CHANGES, SYMMETRIC, UNKNOWN = "keeps the label", "changes the label", "already symmetric", "distinguishable (no labels to judge)"
UNCERTAIN = "uncertain"
CONFIDENT = 0.75  # share of the resamples that must give one verdict; fewer: "uncertain"
# on data already symmetric under g: the held-out classifier's P(true class) from x must beat chance by SKILL_ABOVE
# to judge at all; g permutes classes when g(x) keeps less than RETAINED_BELOW of that margin (a swap of all classes:
# none, below chance; a label-keeping g on data this symmetric keeps 60-100%: a classifier of a few labels is
# surer of the exact images' neighbourhoods it was fitted near than of their turned copies)
SKILL_ABOVE = 0.06
RETAINED_BELOW = 0.30
SYMMETRIC_BELOW = 0.60  # held-out accuracy of telling x from g(x) below which g is "already symmetric"
CLASS_DROP = 0.75  # a class losing this much accuracy under invariance "hurts"
AGREEMENT_BELOW = 0.50  # g "changes the label" when the judge keeps x's class for fewer of the g(x)
# the label evidence the judge and the cross-validation give is weighed by the labels behind it: from MEASURED_FROM
# labels per class on, the resamples' judges are each of an adequate size, so a collision counts only where at least
# STABLE_SHARE of them find it (one found by a few is that judge's noise, not the data's), and the held-out cost of
# invariance (a class's accuracy) averages over enough labels to count; below, every resample's collision counts (a
# split vote leaves the verdict "uncertain", the honest answer with so few labels) and the cost is not used (a class's
# accuracy from 4 held-out labels moves in steps of 25%)
MEASURED_FROM = 10
STABLE_SHARE = 0.5
MIN_FOLDS = 3  # fewer folds (2 labels per class): each held-out label is judged by a classifier of one label per class


def verdict(dist_acc: float, inv: dict[str, Any] | None, agreement: float | None, found: list[dict[str, Any]]
            ) -> tuple[str, str]:
    """The verdict of one set of scores and the reason, in words (rules 1 and 2 of the module's docstring)."""
    told = f"x and g(x) are told apart {dist_acc:.0%} of the time (chance 50%)"
    pairs = ", ".join(f"{c['from']} <-> {c['to']}" for c in found[:4])
    if inv is None or agreement is None:
        if dist_acc < SYMMETRIC_BELOW:
            return SYMMETRIC, told
        return UNKNOWN, "too few labels to judge the label"
    if dist_acc < SYMMETRIC_BELOW:
        # the data looks the same under g: g keeps each class unless it permutes them (mirror-image classes), and then
        # the labels' held-out classifier, right for x, is wrong for g(x); it must be right often enough to tell
        p, p_g, chance = inv["prob_true"], inv["prob_true_moved"], inv["chance"]
        if inv["folds"] < MIN_FOLDS:
            return UNCERTAIN, (f"{told}, but too few labels to tell whether g swaps classes: with 2 per class each "
                               "held-out label is judged by a classifier of one label per class")
        if p - chance < SKILL_ABOVE:
            return UNCERTAIN, (f"{told}, but too few labels to tell whether g swaps classes: the labels' classifier "
                               f"gives held-out labels {p:.0%} probability for their class (chance {chance:.0%})")
        kept = (p_g - chance) / (p - chance)
        if kept < RETAINED_BELOW:
            swaps = f"; maps {pairs} onto each other" if found else ""
            return CHANGES, (f"{told}, but g permutes classes: held-out labels get {p:.0%} probability for their class "
                             f"from x and {p_g:.0%} from g(x) (chance {chance:.0%}){swaps}")
        return SYMMETRIC, (f"{told}; held-out labels keep {kept:.0%} of their probability above chance from g(x) "
                           f"({p_g:.0%}; from x {p:.0%}, chance {chance:.0%})")
    counted = [c for c in found if c.get("counts", True)]
    hurts = []
    if counted:
        hurts.append("maps onto each other: " + ", ".join(f"{c['from']} <-> {c['to']}" for c in counted[:4]))
    if agreement < AGREEMENT_BELOW:
        hurts.append(f"the labels' classifier gives g(x) the class of x for only {agreement:.0%} of images")
    measured = inv.get("labels_per_class", 0) >= MEASURED_FROM  # fewer: the held-out costs are a few labels' noise
    if measured and inv["worst_class_drop"] >= CLASS_DROP:
        hurts.append(f"class {inv.get('worst_class_name', inv['worst_class'])} loses {inv['worst_class_drop']:.0%} "
                     "accuracy under invariance")
    if hurts:
        return CHANGES, "; ".join(hurts)
    unborne = [c for c in found if not c.get("counts", True)]
    why = "" if not unborne else ("; the judge's " + ", ".join(f"{c['from']} <-> {c['to']}" for c in unborne[:2]) +
                                  f" is found by only {max(c['resample_share'] for c in unborne):.0%} of the "
                                  "resamples' judges (noise)")
    cost = ("no class loses most of its accuracy under invariance" if measured else
            "too few labels per class to measure invariance's cost")
    return KEEPS, f"g(x) keeps the class of x for {agreement:.0%} of images, {cost}{why}"


def corroborate(per_resample: list[list[dict[str, Any]]], per_class: int) -> None:
    """Marks each collision (of the full data, then of each resample) with the share of the resamples that find the
    same pair and whether it counts in the verdict (MEASURED_FROM, STABLE_SHARE)."""
    rest = per_resample[1:]
    seen = Counter(frozenset((c["from"], c["to"])) for found in rest for c in found)
    for found in per_resample:
        for c in found:
            share = seen[frozenset((c["from"], c["to"]))] / max(1, len(rest))
            c["resample_share"] = round(share, 4)
            c["counts"] = bool(per_class < MEASURED_FROM or share >= STABLE_SHARE)


def vote(point: tuple[str, str], resampled: list[tuple[str, str]]) -> tuple[str, str, dict[str, int]]:
    """The verdict at least CONFIDENT of the judging resamples give, where more than half of them judge at all (a
    resample that says "uncertain" had too few labels to judge: it abstains, it does not contradict), with the full
    data's reason when it agrees; "uncertain" when CONFIDENT of them abstain; else "uncertain" with what they said.
    And the tally."""
    tally = Counter(v for v, _ in resampled)
    votes = dict(tally.most_common())
    judged = Counter({v: n for v, n in tally.items() if v != UNCERTAIN})
    n_judged = sum(judged.values())
    if n_judged > len(resampled) / 2:
        top, n = judged.most_common(1)[0]
        if n >= CONFIDENT * n_judged:
            reason = point[1] if point[0] == top else next(r for v, r in resampled if v == top)
            abstained = f"; {len(resampled) - n_judged} had too few labels to judge" if n_judged < len(resampled) else ""
            return top, f"{reason} ({n} of {len(resampled)} resamples agree{abstained})", votes
    elif tally[UNCERTAIN] >= CONFIDENT * len(resampled):
        reason = point[1] if point[0] == UNCERTAIN else next(r for v, r in resampled if v == UNCERTAIN)
        return UNCERTAIN, f"{reason} ({tally[UNCERTAIN]} of {len(resampled)} resamples agree)", votes
    said = "; ".join(f"{c} of {len(resampled)} say {v}" + (f" ({next(r for w, r in resampled if w == v)})" if i == 0 else "")
                     for i, (v, c) in enumerate(tally.most_common()))
    return UNCERTAIN, f"the evidence disagrees across resamples of the labels and images: {said}", votes
