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

**Verdict**, the rule applied to the full data and to each resample, weighing evidence by how much
data stands behind it:

1. Distinguishability near chance (thousands of unlabeled images, a spread of about 0.01): the data
   is *already symmetric* under g, and g keeps the label unless it permutes classes (two mirror-image
   classes). A permutation must show in the labels twice over: making the classifier invariant to g
   costs accuracy, *and* the judge sends x's class elsewhere (a collision, or low agreement). A
   collision alone, from a judge of 40 labels, does not override the label-free score.
2. Otherwise (distinguishable): *changes the label* when a collision is found, the judge's agreement
   is low, or invariance clearly hurts; else *keeps the label*.
3. The verdict is the one at least ``CONFIDENT`` of the resamples give; where they disagree, it is
   *uncertain*, and ``--augment auto`` leaves g out of the views (``choice.choose``).

Without 2 labels per class only the label-free score is given (and said).

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
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewlabels.symmetry.transforms import CANDIDATES, DIHEDRAL, SMALL, check_names, dihedral, needs_square, orbit, transformer
from fewlabels.utils.threads import one_blas_thread

FORMAT = 3  # 2: spreads, votes and "uncertain"; 3: collisions weighed against the pair's invariance cost (older caches
# are not reused)
NOT_JUDGED = "not judged"
KEEPS, CHANGES, SYMMETRIC, UNKNOWN = "keeps the label", "changes the label", "already symmetric", "distinguishable (no labels to judge)"
UNCERTAIN = "uncertain"
INVARIANCE_POOL = 300  # of them, spread-labeled, help the cross-validated classifiers
MIN_POOL = 20  # fewer unlabeled images than this: nothing is judged
POOL = 2000  # unlabeled images for the label-free score and the collisions
MAX_SIDE = 14  # images are average-pooled to at most this side before the classifiers
MAX_PER_CLASS = 50  # labels per class the scores use at most (a seeded subsample): more only cost time
RESAMPLES = 12  # bootstrap resamples behind each score's spread and the verdict's vote
CONFIDENT = 0.75  # share of the resamples that must give one verdict; fewer: "uncertain"
# on data already symmetric under g: the held-out classifier's P(true class) from x must beat chance by SKILL_ABOVE
# to judge at all; g permutes classes when g(x) keeps less than RETAINED_BELOW of that margin (a swap of all classes:
# none, below chance; a label-keeping g on data this symmetric keeps 60-100%: a classifier of a few labels is
# surer of the exact images' neighbourhoods it was fitted near than of their turned copies)
SKILL_ABOVE = 0.06
RETAINED_BELOW = 0.30
PROGRESS_AFTER = 5.0  # seconds: a longer analysis says how far it got, at most once per this many seconds
SYMMETRIC_BELOW = 0.60  # held-out accuracy of telling x from g(x) below which g is "already symmetric"
LOGLIK_TOLERANCE = 0.50  # nats per sample invariance may cost before it "hurts" (40 held-out labels: ~0.3 is noise)
CLASS_DROP = 0.75  # a class losing this much accuracy under invariance "hurts"
AGREEMENT_BELOW = 0.50  # g "changes the label" when the judge keeps x's class for fewer of the g(x)
REAL_QUANTILE = 0.8  # g(x) "looks real" when it is as near to a real image as 80% of real images are
COLLISION_SHARE = 0.5  # of class a's images whose g(x) looks real, the share g sends to one class b
COLLISION_BACK = 0.25  # and of b's, the share g sends back to a
COLLISION_BACK_SYMMETRIC = 0.5  # ... when x and g(x) look alike (a weak judge's confusions look like swaps there)
COLLISION_MIN = 4  # images moved between the two, at least
EXAMPLES = 4  # example images per collision (indices into the images given)
# a collision a <-> b is the reading of a judge that never saw g(x); from CORROBORATE_FROM labels per class on, the
# resamples' judges are each of an adequate size, so a collision counts only where at least STABLE_SHARE of them find it
# (one found by a few is that judge's noise, not the data's); below, every resample's collision counts (and a split
# vote leaves the verdict "uncertain", the honest answer with so few labels)
CORROBORATE_FROM = 10
STABLE_SHARE = 0.5
MIN_FOLDS = 3  # fewer folds (2 labels per class): each held-out label is judged by a classifier of one label per class


def _features(x: torch.Tensor, blur: bool = False, contrast: bool = False) -> np.ndarray:
    """Float images (N, C, H, W) in 0..1 -> (blurred,) average-pooled, flattened pixels (N, D).

    Blurred (the classifiers of the labels); with ``contrast`` (the held-out classifiers) the local contrast
    (squared difference from the blur, pooled the same way) is appended: what tells textures apart, which no
    linear function of the pixels does. Blur, contrast and pooling all commute with the flips and quarter turns."""
    parts = [x]
    if blur:
        smooth = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        parts = [smooth, 4 * (x - smooth) ** 2] if contrast else [smooth]
    side = max(x.shape[2], x.shape[3])
    k = max(1, -(-side // MAX_SIDE))
    if k > 1:
        parts = [F.avg_pool2d(p, k, ceil_mode=True) for p in parts]
    return torch.cat([p.reshape(len(p), -1) for p in parts], 1).numpy().astype(np.float64)


def _logreg(c: float = 0.5):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=300, tol=1e-3)


def _fit(model, x: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: 300 iterations are plenty for a score
        return model.fit(x, y)


def _standardizer(x: np.ndarray):
    mean, std = x.mean(0), x.std(0)
    std = np.maximum(std, 0.5 * std.mean())  # near-constant pixels (a digit's border) must not blow up a small shift
    return lambda z: (z - mean) / std


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _shrink(x: torch.Tensor) -> torch.Tensor:
    """Float images in 0..1, larger than 2 * MAX_SIDE on a side, area-averaged down to about that (in chunks, so a
    few thousand 128 px photos never sit in memory as floats at full size). Area averaging over bins placed
    symmetrically commutes with every flip and quarter turn, so the square symmetries' scores do not change."""
    h, w = x.shape[2], x.shape[3]
    scale = 2 * MAX_SIDE / max(h, w)
    if scale >= 1:
        return _to_float(x)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return torch.cat([F.adaptive_avg_pool2d(_to_float(x[i:i + 256]), size) for i in range(0, len(x), 256)])


def distinguishability(real: torch.Tensor, moved: torch.Tensor, standardize, seed: int) -> tuple[float, np.ndarray]:
    """Held-out accuracy of telling ``real`` from ``moved`` = g(other images) (2-fold), and whether each held-out
    image (real ones first) was told right (what the resamples draw from)."""
    xs = standardize(np.concatenate([_features(real), _features(moved)]))
    ys = np.concatenate([np.ones(len(real)), np.zeros(len(moved))])
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(xs)) % 2
    p_real = np.empty(len(xs))
    for f in (0, 1):
        model = _fit(_logreg(), xs[fold != f], ys[fold != f])
        p_real[fold == f] = model.predict_proba(xs[fold == f])[:, 1]
    hits = (p_real >= 0.5) == (ys == 1)
    return float(hits.mean()), hits


def _group_images(x: torch.Tensor, name: str, g) -> list[torch.Tensor]:
    """x under every element of the group g generates (identity first); a small warp: x and one draw of g."""
    if name in DIHEDRAL:
        return [dihedral(x, t, m) for t, m in orbit(name)]
    return [x, g(x)]


def folds(yl: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """Stratified folds over the labeled set: k = min(5, smallest class), the same for every candidate."""
    counts = np.bincount(yl)
    k = int(min(4, counts[counts > 0].min()))
    rng = np.random.default_rng(seed)
    fold = np.empty(len(yl), dtype=np.int64)
    for c in np.flatnonzero(counts):
        idx = np.flatnonzero(yl == c)
        fold[idx] = rng.permutation(len(idx)) % k
    return fold, k


def pseudo_labels(xl: np.ndarray, yl: np.ndarray, xu: np.ndarray, fold: np.ndarray, k: int) -> list[np.ndarray]:
    """Per fold, labels spread from the training folds' labels over the unlabeled images (a k-NN graph)."""
    from sklearn.semi_supervised import LabelSpreading

    out = []
    for f in range(k):
        tr = fold != f
        spread = LabelSpreading(kernel="knn", n_neighbors=max(1, min(7, int(tr.sum()) + len(xu) - 1)), alpha=0.2,
                                max_iter=50)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spread.fit(np.concatenate([xl[tr], xu]), np.concatenate([yl[tr], -np.ones(len(xu), dtype=np.int64)]))
        out.append(spread.transduction_[tr.sum():])
    return out


def fold_models(views: list[np.ndarray], yl: np.ndarray, fold: np.ndarray, k: int, pool_views: list[np.ndarray],
                pool_y: list[np.ndarray]) -> list:
    """Per fold, a classifier trained on every view of the training folds and of the unlabeled images (with the
    fold's spread labels)."""
    models = []
    for f in range(k):
        tr = fold != f
        x = np.concatenate([v[tr] for v in views] + pool_views)
        y = np.concatenate([np.tile(yl[tr], len(views)), np.tile(pool_y[f], len(pool_views))])
        models.append(_fit(_logreg(), x, y))
    return models


def held_out(models: list, views: list[np.ndarray], fold: np.ndarray, num_classes: int) -> np.ndarray:
    """Held-out probabilities (N, K) of the fold models, averaged over the views at test time."""
    probs = np.zeros((len(fold), num_classes))
    for f, model in enumerate(models):
        te = fold == f
        probs[np.ix_(te, model.classes_)] = np.mean([model.predict_proba(v[te]) for v in views], axis=0)
    return probs


def cross_validated(views: list[np.ndarray], yl: np.ndarray, fold: np.ndarray, k: int, num_classes: int,
                    pool_views: list[np.ndarray], pool_y: list[np.ndarray]) -> np.ndarray:
    """Held-out probabilities (N, K) of a classifier trained on every view of the training folds and of the
    unlabeled images (with the fold's spread labels), averaged over the views at test time."""
    return held_out(fold_models(views, yl, fold, k, pool_views, pool_y), views, fold, num_classes)


def invariance(base_p: np.ndarray, inv_p: np.ndarray, yl: np.ndarray, num_classes: int, k: int,
               rows: np.ndarray | None = None, moved_p: np.ndarray | None = None) -> dict[str, Any]:
    """The cost of invariance: held-out log-likelihood per sample, accuracy, and the largest drop of one class's
    accuracy; with ``moved_p`` (the plain classifier's held-out probabilities for g(x)) also its accuracy on
    g(x) and the share of the labeled images it classifies better than chance; over ``rows`` of the labeled set
    (a resample) or all of it."""
    rows = np.arange(len(yl)) if rows is None else rows
    y, bp, ip = yl[rows], base_p[rows], inv_p[rows]
    at = np.arange(len(y))
    ll_base = np.log(np.clip(bp[at, y], 1e-6, 1)).mean()
    ll_inv = np.log(np.clip(ip[at, y], 1e-6, 1)).mean()
    present = np.bincount(y, minlength=num_classes) > 0
    acc_base = np.array([(bp[y == c].argmax(1) == c).mean() if present[c] else 0.0 for c in range(num_classes)])
    acc_inv = np.array([(ip[y == c].argmax(1) == c).mean() if present[c] else 0.0 for c in range(num_classes)])
    drop = acc_base - acc_inv
    worst = int(drop.argmax())
    accuracy, accuracy_inv = float((bp.argmax(1) == y).mean()), float((ip.argmax(1) == y).mean())
    return {"folds": k, "loglik": round(float(ll_base), 4), "loglik_invariant": round(float(ll_inv), 4),
            "delta_loglik": round(float(ll_inv - ll_base), 4), "accuracy": round(accuracy, 4),
            "accuracy_invariant": round(accuracy_inv, 4), "accuracy_drop": round(accuracy - accuracy_inv, 4),
            "worst_class": worst, "worst_class_drop": round(float(drop[worst]), 4),
            **({} if moved_p is None else _permutation_stats(bp, moved_p[rows], y))}


def _permutation_stats(bp: np.ndarray, mp: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """How much less probability the held-out classifier gives the true class of g(x) than of x (per sample, paired),
    its z-score, and the mean probability of the true class against chance (1 / classes present)."""
    at = np.arange(len(y))
    d = bp[at, y] - mp[at, y]
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    return {"accuracy_moved": round(float((mp.argmax(1) == y).mean()), 4),
            "prob_true": round(float(bp[at, y].mean()), 4), "prob_true_moved": round(float(mp[at, y].mean()), 4),
            "permutation_z": round(float(d.mean() / se) if se > 0 else 0.0, 3),
            "chance": round(1.0 / len(np.unique(y)), 4)}


def near_real(real: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Which transformed images look like real data: as close to their nearest real image as REAL_QUANTILE of
    real images are to theirs (the nearest other real image)."""
    r, m = torch.from_numpy(real).float(), torch.from_numpy(moved).float()
    d_real = torch.cdist(r, r)
    d_real.fill_diagonal_(float("inf"))
    limit = torch.quantile(d_real.min(1).values, REAL_QUANTILE)
    return (torch.cdist(m, r).min(1).values <= limit).numpy()


def collisions(pred_x: np.ndarray, pred_moved: np.ndarray, looks_real: np.ndarray, classes: list[str],
               back_share: float = COLLISION_BACK) -> list[dict[str, Any]]:
    """Pairs of classes g maps onto each other: of class a's images (as the judge sees them) whose g(x) looks real,
    a share of at least COLLISION_SHARE lands in b, and of b's at least ``back_share`` in a (both ways: one-way
    drift is the judge's own confusion more often than the data's)."""
    k = len(classes)
    n_real = np.bincount(pred_x[looks_real], minlength=k)
    moves = np.zeros((k, k), dtype=np.int64)
    np.add.at(moves, (pred_x[looks_real], pred_moved[looks_real]), 1)
    share = moves / np.maximum(n_real, 1)[:, None]
    found = []
    for a in range(k):
        for b in range(a + 1, k):
            fwd, back = sorted(((share[a, b], a, b), (share[b, a], b, a)), reverse=True)
            if fwd[0] >= COLLISION_SHARE and back[0] >= back_share and moves[a, b] + moves[b, a] >= COLLISION_MIN:
                x, y = fwd[1], fwd[2]
                sel = np.flatnonzero(looks_real & (((pred_x == x) & (pred_moved == y)) | ((pred_x == y) & (pred_moved == x))))
                found.append({"from": classes[x], "to": classes[y], "share": round(float(fwd[0]), 3),
                              "share_back": round(float(back[0]), 3), "count": int(moves[a, b] + moves[b, a]),
                              "examples": sel[:EXAMPLES].tolist()})
    return sorted(found, key=lambda c: -c["share"] - c["share_back"])


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
    measured = inv["folds"] >= MIN_FOLDS  # with 2 labels per class the held-out costs are one label's noise
    if measured and inv["delta_loglik"] < -LOGLIK_TOLERANCE:
        hurts.append(f"invariance costs {-inv['delta_loglik']:.2f} nats of held-out log-likelihood")
    if measured and inv["worst_class_drop"] >= CLASS_DROP:
        hurts.append(f"class {inv.get('worst_class_name', inv['worst_class'])} loses {inv['worst_class_drop']:.0%} "
                     "accuracy under invariance")
    if hurts:
        return CHANGES, "; ".join(hurts)
    unborne = [c for c in found if not c.get("counts", True)]
    why = "" if not unborne else ("; the judge's " + ", ".join(f"{c['from']} <-> {c['to']}" for c in unborne[:2]) +
                                  f" is found by only {max(c['resample_share'] for c in unborne):.0%} of the "
                                  "resamples' judges (noise)")
    cost = "invariance costs nothing measurable" if measured else "too few labels per class to measure invariance's cost"
    return KEEPS, f"g(x) keeps the class of x for {agreement:.0%} of images, {cost}{why}"


def corroborate(per_resample: list[list[dict[str, Any]]], per_class: int) -> None:
    """Marks each collision (of the full data, then of each resample) with the share of the resamples that find the
    same pair and whether it counts in the verdict (CORROBORATE_FROM, STABLE_SHARE)."""
    rest = per_resample[1:]
    seen = Counter(frozenset((c["from"], c["to"])) for found in rest for c in found)
    for found in per_resample:
        for c in found:
            share = seen[frozenset((c["from"], c["to"]))] / max(1, len(rest))
            c["resample_share"] = round(share, 4)
            c["counts"] = bool(per_class < CORROBORATE_FROM or share >= STABLE_SHARE)


def vote(point: tuple[str, str], resampled: list[tuple[str, str]]) -> tuple[str, str, dict[str, int]]:
    """The verdict at least CONFIDENT of the resamples give (with the full data's reason when it agrees), else
    "uncertain" with what they said; and the tally."""
    tally = Counter(v for v, _ in resampled)
    top, n = tally.most_common(1)[0]
    votes = dict(tally.most_common())
    if n >= CONFIDENT * len(resampled):
        reason = point[1] if point[0] == top else next(r for v, r in resampled if v == top)
        return top, f"{reason} ({n} of {len(resampled)} resamples agree)", votes
    said = "; ".join(f"{c} of {len(resampled)} say {v}" + (f" ({next(r for w, r in resampled if w == v)})" if i == 0 else "")
                     for i, (v, c) in enumerate(tally.most_common()))
    return UNCERTAIN, f"the evidence disagrees across resamples of the labels and images: {said}", votes


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
        xl = _shrink(x_labeled[torch.as_tensor(keep)])

    gen_torch = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x_pool), generator=gen_torch)[: 2 * (pool_size // 2)]
    pool = _shrink(x_pool[pick])
    half = len(pool) // 2
    real, other = pool[:half], pool[half:]
    fill = float(torch.cat([pool[..., 0, :], pool[..., -1, :], pool[..., :, 0], pool[..., :, -1]], -1).median())
    standardize = _standardizer(_features(pool))
    features = _features(pool[:1]).shape[1]
    eta = estimate_seconds(len(names), 0 if not labeled_ok else len(yl), labeled_ok, features, resamples)
    if progress is not None:
        progress(f"symmetry analysis: {len(names)} transformations, {len(pool)} unlabeled images, "
                 f"{len(yl) if labeled_ok else 0} labels; about {math.ceil(eta)} s on a free core")
    rng = np.random.default_rng(seed + 104729)
    if labeled_ok:
        # the judges of the collisions and agreement: one from all the labels spread over the unlabeled images,
        # and one per resample (labels and unlabeled images drawn with replacement)
        blurred = _standardizer(_features(pool, blur=True))
        xl_b, other_b = blurred(_features(xl, blur=True)), blurred(_features(other, blur=True))
        real_b = blurred(_features(real, blur=True))
        draws = [(np.arange(len(yl)), np.arange(half))] + [(_stratified(yl, rng), rng.integers(0, half, half))
                                                          for _ in range(resamples)]
        judges, judged_other = [], []
        for li, ui in draws:
            spread = pseudo_labels(xl_b[li], yl[li], other_b[ui], np.ones(len(li), dtype=np.int64), 1)[0]
            judge = _fit(_logreg(), np.concatenate([xl_b[li], other_b[ui]]), np.concatenate([yl[li], spread]))
            judges.append(judge)
            judged_other.append(judge.predict(other_b))
        # cross-validation over the labels (pixels and local contrast), the fold's spread labels on a few unlabeled
        # images helping
        cv = _standardizer(_features(pool, blur=True, contrast=True))
        xl_b, other_b = cv(_features(xl, blur=True, contrast=True)), cv(_features(other, blur=True, contrast=True))
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
            views = [cv(_features(v, blur=True, contrast=True)) for v in _group_images(xl, name, g)]
            pool_views = [other_b[:INVARIANCE_POOL]] + [cv(_features(v, blur=True, contrast=True))
                                                         for v in _group_images(helpers, name, g)[1:]]
            inv_p = cross_validated(views, yl, fold, k, len(classes), pool_views, spread_cv)
            moved_p = held_out(base_models, [cv(_features(g(xl), blur=True, contrast=True))], fold, len(classes))
            moved_b = blurred(_features(moved, blur=True))
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
