"""Which transformations keep the label: cheap scores per candidate, their spread, and a verdict.

For each candidate g (``transforms.CANDIDATES``):

- **distinguishability** (no labels): a logistic regression on pixels learns to tell real images x
  from transformed ones g(x') (disjoint halves of an unlabeled subsample, so it cannot match
  pairs); its held-out accuracy against chance (0.5). Near chance: the data is already symmetric
  under g (and g carries nothing for SLA to predict).
- **label invariance** (labels): stratified cross-validation over the labeled set; a logistic
  regression trained on x (plus a few unlabeled images carrying labels spread from the training
  folds over a k-NN graph) against one trained also on the images under the group g generates,
  which averages its probabilities over that group at test time. Reported: the change of held-out
  log-likelihood per sample, of accuracy, and the largest drop of one class's accuracy.
- **agreement**: a judge (the same classifier, trained on every label spread over the unlabeled
  subsample) keeps x's class for g(x) on this share of unlabeled images.
- **collisions**: pairs of classes g maps onto each other (by the judge: most of class a's images go
  to b, and a good share of b's to a), counted only where g(x) lies as near a real image as most real
  images do (so g(x) looks like real data).

**Spread.** Each score is recomputed on ``RESAMPLES`` bootstrap resamples: the labels (per class, with
replacement; the judge is refitted on them) and the unlabeled subsample (the judge's spread labels and
the images it is scored on). The held-out predictions of the distinguishability and the
cross-validation are resampled, not refitted (the fits dominate the cost). Each score's ``_sd`` is its
standard deviation over the resamples.

**Verdict**: the rule in ``verdict.py``, applied to the full data and to each resample; the resamples vote, and
where they split the verdict is *uncertain*. The scores themselves are computed in ``scores.py``.

**Bounded.** The labels are subsampled to ``MAX_PER_CLASS`` per class (what the judge and the
cross-validation need; all 60,000 Fashion-MNIST labels cost no more than 50 per class), the
unlabeled images to ``POOL``, and images larger than ``2 * MAX_SIDE`` are shrunk by area averaging
first (it commutes with every flip and quarter turn), so the time does not grow with the label
count or the image size.

Why logistic regression on (pooled, blurred) pixels: it takes well under a second per candidate on
one core for a few thousand images, is deterministic for a seed, and linear pixel statistics already
separate what matters for flips and quarter turns (a mirrored digit, an upside-down shirt); a small
CNN would need training time per candidate that the 60 s budget does not allow. Its known weakness:
it pays for small shifts that a CNN absorbs, so the small warps' verdicts are advisory (``--augment
auto`` takes only flips and quarter turns from them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fewlabels.symmetry.scores import (
    COLLISION_BACK,
    COLLISION_BACK_SYMMETRIC,
    MAX_SIDE,
    collisions,
    cross_validated,
    distinguishability,
    fit,
    fold_models,
    folds,
    group_images,
    held_out,
    invariance,
    logreg,
    near_real,
    pixel_features,
    pseudo_labels,
    shrink,
    standardizer,
)
from fewlabels.symmetry.transforms import CANDIDATES, DIHEDRAL, SMALL, check_names, needs_square, transformer
from fewlabels.symmetry.verdict import CHANGES, KEEPS, SYMMETRIC, SYMMETRIC_BELOW, UNCERTAIN, UNKNOWN, corroborate, verdict, vote
from fewlabels.utils.threads import one_blas_thread

__all__ = ["CHANGES", "FORMAT", "KEEPS", "MAX_PER_CLASS", "NOT_JUDGED", "SYMMETRIC", "UNCERTAIN", "UNKNOWN", "analyse",
           "estimate_seconds", "labels_subsample", "vote"]

FORMAT = 3  # 2: spreads, votes and "uncertain"; 3: collisions most resamples find and, from 10 labels per class, invariance costs
# (caches of older formats are not reused)
NOT_JUDGED = "not judged"
INVARIANCE_POOL = 300  # of them, spread-labeled, help the cross-validated classifiers
MIN_POOL = 20  # fewer unlabeled images than this: nothing is judged
POOL = 2000  # unlabeled images for the label-free score and the collisions
MAX_PER_CLASS = 50  # labels per class the scores use at most (a seeded subsample): more only cost time
RESAMPLES = 12  # bootstrap resamples behind each score's spread and the verdict's vote
PROGRESS_AFTER = 5.0  # seconds: a longer analysis says how far it got, at most once per this many seconds


def _sd(values: list[float]) -> float:
    return round(float(np.std(values)), 4) if values else 0.0


def estimate_seconds(n_candidates: int, n_labels: int, labeled_ok: bool, features: int, resamples: int = RESAMPLES
                     ) -> float:
    """A rough time for the analysis on one free core, from the number and size of the fits (calibrated on this
    project's 2-core CI machine: Fashion-MNIST, 10 candidates, 4 labels per class, ~10 s); a busy machine takes longer."""
    size = features / 196.0
    per_candidate = 0.35 * size  # the distinguishability's two fits on 2,000 images
    if labeled_ok:
        per_candidate += 0.25 * size * (1 + n_labels / 300.0) + 0.01 * resamples
        fixed = (resamples + 1) * 0.12 * size * (1 + n_labels / 500.0)
    else:
        fixed = 0.0
    return 0.5 + fixed + n_candidates * per_candidate


def labels_subsample(yl: np.ndarray, seed: int, per_class: int = MAX_PER_CLASS) -> np.ndarray:
    """Positions of at most ``per_class`` labels of each class (seeded), in order: what the scores use."""
    rng = np.random.default_rng(seed + 7919)
    keep = [rng.permutation(np.flatnonzero(yl == c))[:per_class] for c in np.unique(yl)]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def _stratified(yl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap resample of the labels, per class (each class keeps its count)."""
    return np.concatenate([rng.choice(idx, len(idx)) for idx in (np.flatnonzero(yl == c) for c in np.unique(yl))])


def _not_judged(names: list[str], x_pool: torch.Tensor, y_labeled, classes: list[str], seed: int, notes: list[str],
                start: float) -> dict[str, Any]:
    notes.append(f"only {len(x_pool)} unlabeled images: at least {MIN_POOL} are needed to judge a transformation; "
                 "nothing was judged")
    rows = [{"name": n, "kind": "square symmetry" if n in DIHEDRAL else SMALL[n], "distinguishability": None,
             "chance": 0.5, "agreement": None, "invariance": None, "collisions": None, "verdict": NOT_JUDGED,
             "reason": "too few images"} for n in names]
    return {"format": FORMAT, "seed": seed, "pool": int(len(x_pool)), "labeled": 0 if y_labeled is None else len(y_labeled),
            "image_shape": list(x_pool.shape[1:]), "classes": list(classes), "notes": notes, "candidates": rows,
            "seconds": round(time.perf_counter() - start, 2)}


@one_blas_thread
def analyse(x_pool: torch.Tensor, x_labeled: torch.Tensor | None, y_labeled: torch.Tensor | np.ndarray | None,
            classes: list[str], candidates: list[str] | tuple[str, ...] | None = None, seed: int = 0,
            pool_size: int = POOL, resamples: int = RESAMPLES, progress: Callable[[str], None] | None = None
            ) -> dict[str, Any]:
    """Scores, their spreads and verdicts for each candidate on images (N, C, H, W), uint8 or float in 0..1.

    ``x_pool``: unlabeled images (the label-free score and collisions); ``x_labeled``/``y_labeled``:
    the few labels (cross-validation, the collision classifier; subsampled to MAX_PER_CLASS per class).
    ``progress``, when given, receives a time estimate before the work and a line now and then while it
    runs longer than PROGRESS_AFTER seconds. Deterministic for ``seed``.
    """
    start = time.perf_counter()
    names = list(CANDIDATES if candidates is None else candidates)
    check_names(names)
    notes: list[str] = []
    h, w = x_pool.shape[2], x_pool.shape[3]
    if h != w:
        skipped = [n for n in names if needs_square(n)]
        if skipped:
            notes.append(f"images are {h}x{w}, not square: skipped {', '.join(skipped)} (they turn HxW into WxH)")
        names = [n for n in names if not needs_square(n)]
    if len(x_pool) < MIN_POOL:
        return _not_judged(names, x_pool, y_labeled, classes, seed, notes, start)
    resamples = max(1, int(resamples))
    yl = None if y_labeled is None else np.asarray(torch.as_tensor(y_labeled).cpu(), dtype=np.int64)
    counts = None if yl is None else np.bincount(yl, minlength=len(classes))
    labeled_ok = yl is not None and len(yl) > 0 and (counts[counts > 0].min() >= 2) and (counts > 0).sum() >= 2
    if not labeled_ok:
        have = 0 if yl is None or not len(yl) else int(counts[counts > 0].min())
        notes.append(f"fewer than 2 labels per class (the smallest class has {have}): label-free scores only, "
                     "no label invariance or collisions")
    labels_given = 0 if yl is None else int(len(yl))
    if labeled_ok:
        keep = labels_subsample(yl, seed)
        if len(keep) < len(yl):
            notes.append(f"{len(keep)} of the {len(yl)} labels used (at most {MAX_PER_CLASS} per class, seeded): "
                         "the scores need no more, and more would only cost time")
        yl = yl[keep]
        xl = shrink(x_labeled[torch.as_tensor(keep)])

    gen_torch = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x_pool), generator=gen_torch)[: 2 * (pool_size // 2)]
    pool = shrink(x_pool[pick])
    half = len(pool) // 2
    real, other = pool[:half], pool[half:]
    fill = float(torch.cat([pool[..., 0, :], pool[..., -1, :], pool[..., :, 0], pool[..., :, -1]], -1).median())
    standardize = standardizer(pixel_features(pool))
    features = pixel_features(pool[:1]).shape[1]
    eta = estimate_seconds(len(names), 0 if not labeled_ok else len(yl), labeled_ok, features, resamples)
    if progress is not None:
        progress(f"symmetry analysis: {len(names)} transformations, {len(pool)} unlabeled images, "
                 f"{len(yl) if labeled_ok else 0} labels; about {math.ceil(eta)} s on a free core")
    rng = np.random.default_rng(seed + 104729)
    if labeled_ok:
        # the judges of the collisions and agreement: one from all the labels spread over the unlabeled images,
        # and one per resample (labels and unlabeled images drawn with replacement)
        blurred = standardizer(pixel_features(pool, blur=True))
        xl_b, other_b = blurred(pixel_features(xl, blur=True)), blurred(pixel_features(other, blur=True))
        real_b = blurred(pixel_features(real, blur=True))
        draws = [(np.arange(len(yl)), np.arange(half))] + [(_stratified(yl, rng), rng.integers(0, half, half))
                                                          for _ in range(resamples)]
        judges, judged_other = [], []
        for li, ui in draws:
            spread = pseudo_labels(xl_b[li], yl[li], other_b[ui], np.ones(len(li), dtype=np.int64), 1)[0]
            judge = fit(logreg(), np.concatenate([xl_b[li], other_b[ui]]), np.concatenate([yl[li], spread]))
            judges.append(judge)
            judged_other.append(judge.predict(other_b))
        # cross-validation over the labels (pixels and local contrast), the fold's spread labels on a few unlabeled
        # images helping
        cv = standardizer(pixel_features(pool, blur=True, contrast=True))
        xl_b, other_b = cv(pixel_features(xl, blur=True, contrast=True)), cv(pixel_features(other, blur=True, contrast=True))
        fold, k = folds(yl, seed)
        per_class = int(np.bincount(yl)[np.bincount(yl) > 0].min())
        helpers = other[:INVARIANCE_POOL]
        spread_cv = pseudo_labels(xl_b, yl, other_b[:INVARIANCE_POOL], fold, k)
        base_models = fold_models([xl_b], yl, fold, k, [other_b[:INVARIANCE_POOL]], spread_cv)
        base_p = held_out(base_models, [xl_b], fold, len(classes))
    hit_draws = [rng.integers(0, 2 * half, 2 * half) for _ in range(resamples)]

    results = []
    last_said = start
    for i, name in enumerate(names):
        now = time.perf_counter()
        if progress is not None and now - start >= PROGRESS_AFTER and now - last_said >= PROGRESS_AFTER:
            progress(f"symmetry analysis: {i} of {len(names)} transformations, {now - start:.0f} s "
                     f"(about {max(0, math.ceil(eta - (now - start)))} s left)")
            last_said = now
        g = transformer(name, fill, torch.Generator().manual_seed(seed * 1000 + i))
        moved = g(other)
        acc, hits = distinguishability(real, moved, standardize, seed + i)
        dist_r = [float(hits[d].mean()) for d in hit_draws]
        row: dict[str, Any] = {"name": name, "kind": "square symmetry" if name in DIHEDRAL else SMALL[name],
                               "distinguishability": round(acc, 4), "distinguishability_sd": _sd(dist_r), "chance": 0.5}
        if labeled_ok:
            views = [cv(pixel_features(v, blur=True, contrast=True)) for v in group_images(xl, name, g)]
            pool_views = [other_b[:INVARIANCE_POOL]] + [cv(pixel_features(v, blur=True, contrast=True))
                                                         for v in group_images(helpers, name, g)[1:]]
            inv_p = cross_validated(views, yl, fold, k, len(classes), pool_views, spread_cv)
            moved_p = held_out(base_models, [cv(pixel_features(g(xl), blur=True, contrast=True))], fold, len(classes))
            moved_b = blurred(pixel_features(moved, blur=True))
            looks_real = near_real(real_b, moved_b)
            back = COLLISION_BACK_SYMMETRIC if acc < SYMMETRIC_BELOW else COLLISION_BACK
            scores = []  # (inv, agreement, collisions) of the full data, then of each resample
            for r, (li, ui) in enumerate(draws):
                inv = invariance(base_p, inv_p, yl, len(classes), k, None if r == 0 else li, moved_p)
                inv["worst_class_name"] = classes[inv["worst_class"]]
                judged_moved = judges[r].predict(moved_b)
                agreement = float((judged_moved[ui] == judged_other[r][ui]).mean())
                found = collisions(judged_other[r][ui], judged_moved[ui], looks_real[ui], classes, back)
                scores.append((inv, agreement, found))
            corroborate([s[2] for s in scores], per_class)
            inv, agreement, found = scores[0]
            for c in found:  # positions in `other` -> indices into x_pool
                c["examples"] = [int(pick[half + j]) for j in c["examples"]]
            rest = scores[1:]
            inv["delta_loglik_sd"] = _sd([s[0]["delta_loglik"] for s in rest])
            inv["accuracy_drop_sd"] = _sd([s[0]["accuracy_drop"] for s in rest])
            inv["worst_class_drop_sd"] = _sd([s[0]["worst_class_drop"] for s in rest])
            row["looks_real"] = round(float(looks_real.mean()), 4)
            row["agreement"], row["agreement_sd"] = round(agreement, 4), _sd([s[1] for s in rest])
            row["invariance"] = inv
            row["collisions"] = found
            row["collision_share"] = round(sum(bool(s[2]) for s in rest) / len(rest), 4)
            point = verdict(acc, inv, agreement, found)
            resampled = [verdict(d, *s) for d, s in zip(dist_r, rest)]
        else:
            row.update(agreement=None, invariance=None, collisions=None)
            point = verdict(acc, None, None, [])
            resampled = [verdict(d, None, None, []) for d in dist_r]
        row["verdict"], row["reason"], row["votes"] = vote(point, resampled)
        results.append(row)
    return {"format": FORMAT, "seed": seed, "pool": int(len(pool)), "labeled": labels_given,
            "labeled_used": int(len(yl)) if labeled_ok else 0, "resamples": resamples,
            "image_shape": list(x_pool.shape[1:]), "classes": list(classes), "notes": notes,
            "method": "logistic regression on pixels average-pooled to at most "
                      f"{MAX_SIDE}x{MAX_SIDE}; {len(pool)} unlabeled images; stratified cross-validation over the labels; "
                      f"{resamples} bootstrap resamples of the labels and the unlabeled images",
            "estimated_seconds": round(eta, 1), "candidates": results, "seconds": round(time.perf_counter() - start, 2)}
