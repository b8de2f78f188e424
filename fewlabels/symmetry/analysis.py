"""Which transformations keep the label: cheap scores per candidate and a verdict.

For each candidate g (``transforms.CANDIDATES``):

- **distinguishability** (no labels): a logistic regression on pixels learns to tell real images x
  from transformed ones g(x') (disjoint halves of an unlabeled subsample, so it cannot match
  pairs); its held-out accuracy against chance (0.5). Near chance: the data is already symmetric
  under g (and g carries nothing for SLA to predict).
- **label invariance** (labels): stratified cross-validation over the labeled set; a logistic
  regression trained on x (plus a few unlabeled images carrying labels spread from the training
  folds over a k-NN graph) against one trained also on the images under the group g generates,
  which averages its probabilities over that group at test time. Reported: the change of held-out
  log-likelihood per sample and the largest drop of one class's accuracy.
- **agreement**: a judge (the same classifier, trained on every label spread over the unlabeled
  subsample) keeps x's class for g(x) on this share of unlabeled images.
- **collisions**: pairs of classes g maps onto each other (by the judge: most of class a's images go
  to b, and a good share of b's to a), counted only where g(x) lies as near a real image as most real
  images do (so g(x) looks like real data).

Verdict, in this order: *changes the label* when a collision is found; *already symmetric* when
the distinguishability is near chance; *changes the label* when the judge's agreement is low or
invariance clearly hurts; else *keeps the label*. Without 2 labels per class only the label-free
score is given (and said).

Why logistic regression on (pooled, blurred) pixels: it takes well under a second per candidate on
one core for a few thousand images, is deterministic for a seed, and linear pixel statistics already
separate what matters for flips and quarter turns (a mirrored digit, an upside-down shirt); a small
CNN would need training time per candidate that the 60 s budget does not allow. Its known weakness:
it pays for small shifts that a CNN absorbs, so the small warps' verdicts are advisory (``--augment
auto`` takes only flips and quarter turns from them).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewlabels.symmetry.transforms import CANDIDATES, DIHEDRAL, SMALL, check_names, dihedral, needs_square, orbit, transformer
from fewlabels.utils.threads import one_blas_thread

FORMAT = 1
NOT_JUDGED = "not judged"
KEEPS, CHANGES, SYMMETRIC, UNKNOWN = "keeps the label", "changes the label", "already symmetric", "distinguishable (no labels to judge)"
INVARIANCE_POOL = 300  # of them, spread-labeled, help the cross-validated classifiers
MIN_POOL = 20  # fewer unlabeled images than this: nothing is judged
POOL = 2000  # unlabeled images for the label-free score and the collisions
MAX_SIDE = 14  # images are average-pooled to at most this side before the classifiers
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


def _features(x: torch.Tensor, blur: bool = False) -> np.ndarray:
    """Float images (N, C, H, W) in 0..1 -> (blurred,) average-pooled, flattened pixels (N, D)."""
    if blur:
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    side = max(x.shape[2], x.shape[3])
    k = max(1, -(-side // MAX_SIDE))
    if k > 1:
        x = F.avg_pool2d(x, k, ceil_mode=True)
    return x.reshape(len(x), -1).numpy().astype(np.float64)


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


def distinguishability(real: torch.Tensor, moved: torch.Tensor, standardize, seed: int
                       ) -> tuple[float, np.ndarray, np.ndarray]:
    """Held-out accuracy of telling ``real`` from ``moved`` = g(other images) (2-fold), and the held-out P(real)
    of each real and each moved image."""
    xs = standardize(np.concatenate([_features(real), _features(moved)]))
    ys = np.concatenate([np.ones(len(real)), np.zeros(len(moved))])
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(xs)) % 2
    p_real = np.empty(len(xs))
    for f in (0, 1):
        model = _fit(_logreg(), xs[fold != f], ys[fold != f])
        p_real[fold == f] = model.predict_proba(xs[fold == f])[:, 1]
    accuracy = float(((p_real >= 0.5) == (ys == 1)).mean())
    return accuracy, p_real[: len(real)], p_real[len(real):]


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


def cross_validated(views: list[np.ndarray], yl: np.ndarray, fold: np.ndarray, k: int, num_classes: int,
                    pool_views: list[np.ndarray], pool_y: list[np.ndarray]) -> np.ndarray:
    """Held-out probabilities (N, K) of a classifier trained on every view of the training folds and of the
    unlabeled images (with the fold's spread labels), averaged over the views at test time."""
    probs = np.zeros((len(yl), num_classes))
    for f in range(k):
        tr, te = fold != f, fold == f
        x = np.concatenate([v[tr] for v in views] + pool_views)
        y = np.concatenate([np.tile(yl[tr], len(views)), np.tile(pool_y[f], len(pool_views))])
        model = _fit(_logreg(), x, y)
        probs[np.ix_(te, model.classes_)] = np.mean([model.predict_proba(v[te]) for v in views], axis=0)
    return probs


def invariance(base_p: np.ndarray, inv_p: np.ndarray, yl: np.ndarray, num_classes: int, k: int) -> dict[str, Any]:
    """The cost of invariance: held-out log-likelihood per sample and the largest drop of one class's accuracy."""
    rows = np.arange(len(yl))
    ll_base = np.log(np.clip(base_p[rows, yl], 1e-6, 1)).mean()
    ll_inv = np.log(np.clip(inv_p[rows, yl], 1e-6, 1)).mean()
    present = np.bincount(yl, minlength=num_classes) > 0
    acc_base = np.array([(base_p[yl == c].argmax(1) == c).mean() if present[c] else 0.0 for c in range(num_classes)])
    acc_inv = np.array([(inv_p[yl == c].argmax(1) == c).mean() if present[c] else 0.0 for c in range(num_classes)])
    drop = acc_base - acc_inv
    worst = int(drop.argmax())
    return {"folds": k, "loglik": round(float(ll_base), 4), "loglik_invariant": round(float(ll_inv), 4),
            "delta_loglik": round(float(ll_inv - ll_base), 4), "accuracy": round(float((base_p.argmax(1) == yl).mean()), 4),
            "accuracy_invariant": round(float((inv_p.argmax(1) == yl).mean()), 4),
            "worst_class": worst, "worst_class_drop": round(float(drop[worst]), 4)}


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
    """The verdict and the reason for it, in words (see the module's docstring for the order of the rules)."""
    if found:
        return CHANGES, "maps onto each other: " + ", ".join(f"{c['from']} <-> {c['to']}" for c in found[:4])
    if dist_acc < SYMMETRIC_BELOW:
        return SYMMETRIC, f"x and g(x) are told apart only {dist_acc:.0%} of the time (chance 50%)"
    if inv is None or agreement is None:
        return UNKNOWN, "too few labels to judge the label"
    hurts = []
    if agreement < AGREEMENT_BELOW:
        hurts.append(f"the labels' classifier gives g(x) the class of x for only {agreement:.0%} of images")
    if inv["delta_loglik"] < -LOGLIK_TOLERANCE:
        hurts.append(f"invariance costs {-inv['delta_loglik']:.2f} nats of held-out log-likelihood")
    if inv["worst_class_drop"] >= CLASS_DROP:
        hurts.append(f"class {inv['worst_class_name']} loses {inv['worst_class_drop']:.0%} accuracy under invariance")
    if hurts:
        return CHANGES, "; ".join(hurts)
    return KEEPS, f"g(x) keeps the class of x for {agreement:.0%} of images, invariance costs nothing measurable"


@one_blas_thread
def analyse(x_pool: torch.Tensor, x_labeled: torch.Tensor | None, y_labeled: torch.Tensor | np.ndarray | None,
            classes: list[str], candidates: list[str] | tuple[str, ...] | None = None, seed: int = 0,
            pool_size: int = POOL) -> dict[str, Any]:
    """Scores and verdicts for each candidate on images (N, C, H, W), uint8 or float in 0..1.

    ``x_pool``: unlabeled images (the label-free score and collisions); ``x_labeled``/``y_labeled``:
    the few labels (cross-validation, the collision classifier). Deterministic for ``seed``.
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
        notes.append(f"only {len(x_pool)} unlabeled images: at least {MIN_POOL} are needed to judge a transformation; "
                     "nothing was judged")
        rows = [{"name": n, "kind": "square symmetry" if n in DIHEDRAL else SMALL[n], "distinguishability": None,
                 "chance": 0.5, "agreement": None, "invariance": None, "collisions": None, "verdict": NOT_JUDGED,
                 "reason": "too few images"} for n in names]
        return {"format": FORMAT, "seed": seed, "pool": int(len(x_pool)), "labeled": 0 if y_labeled is None else len(y_labeled),
                "image_shape": list(x_pool.shape[1:]), "classes": list(classes), "notes": notes, "candidates": rows,
                "seconds": round(time.perf_counter() - start, 2)}
    gen_torch = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x_pool), generator=gen_torch)[: 2 * (pool_size // 2)]
    pool = _to_float(x_pool[pick])
    half = len(pool) // 2
    real, other = pool[:half], pool[half:]
    fill = float(torch.cat([pool[..., 0, :], pool[..., -1, :], pool[..., :, 0], pool[..., :, -1]], -1).median())
    standardize = _standardizer(_features(pool))

    yl = None if y_labeled is None else np.asarray(torch.as_tensor(y_labeled).cpu(), dtype=np.int64)
    xl = None if x_labeled is None else _to_float(x_labeled)
    counts = None if yl is None else np.bincount(yl, minlength=len(classes))
    labeled_ok = yl is not None and len(yl) > 0 and (counts[counts > 0].min() >= 2) and (counts > 0).sum() >= 2
    if not labeled_ok:
        have = 0 if yl is None or not len(yl) else int(counts[counts > 0].min())
        notes.append(f"fewer than 2 labels per class (the smallest class has {have}): label-free scores only, "
                     "no label invariance or collisions")
    if labeled_ok:
        # one classifier from the labels spread over the unlabeled images: the collisions' and agreement's judge
        blurred = _standardizer(_features(pool, blur=True))
        xl_b, other_b = blurred(_features(xl, blur=True)), blurred(_features(other, blur=True))
        spread_all = pseudo_labels(xl_b, yl, other_b, np.zeros(len(yl), dtype=np.int64) + 1, 1)[0]
        judge = _fit(_logreg(), np.concatenate([xl_b, other_b]), np.concatenate([yl, spread_all]))
        judged_other = judge.predict(other_b)
        real_b = blurred(_features(real, blur=True))
        # cross-validation over the labels, the fold's spread labels on a few unlabeled images helping
        fold, k = folds(yl, seed)
        helpers = other[:INVARIANCE_POOL]
        spread = pseudo_labels(xl_b, yl, other_b[:INVARIANCE_POOL], fold, k)
        base_p = cross_validated([xl_b], yl, fold, k, len(classes), [other_b[:INVARIANCE_POOL]], spread)

    results = []
    for i, name in enumerate(names):
        g = transformer(name, fill, torch.Generator().manual_seed(seed * 1000 + i))
        moved = g(other)
        acc, p_true, p_moved = distinguishability(real, moved, standardize, seed + i)
        row: dict[str, Any] = {"name": name, "kind": "square symmetry" if name in DIHEDRAL else SMALL[name],
                               "distinguishability": round(acc, 4), "chance": 0.5}
        inv, agreement, found = None, None, []
        if labeled_ok:
            views = [blurred(_features(v, blur=True)) for v in _group_images(xl, name, g)]
            pool_views = [other_b[:INVARIANCE_POOL]] + [blurred(_features(v, blur=True))
                                                         for v in _group_images(helpers, name, g)[1:]]
            inv = invariance(base_p, cross_validated(views, yl, fold, k, len(classes), pool_views, spread), yl,
                             len(classes), k)
            inv["worst_class_name"] = classes[inv["worst_class"]]
            judged_moved = judge.predict(blurred(_features(moved, blur=True)))
            agreement = round(float((judged_moved == judged_other).mean()), 4)
            looks_real = near_real(real_b, blurred(_features(moved, blur=True)))
            back = COLLISION_BACK_SYMMETRIC if acc < SYMMETRIC_BELOW else COLLISION_BACK
            found = collisions(judged_other, judged_moved, looks_real, classes, back)
            for c in found:  # positions in `other` -> indices into x_pool
                c["examples"] = [int(pick[half + j]) for j in c["examples"]]
            row["looks_real"] = round(float(looks_real.mean()), 4)
        row["agreement"] = agreement
        row["invariance"] = inv
        row["collisions"] = found if labeled_ok else None
        row["verdict"], row["reason"] = verdict(acc, inv, agreement, found)
        results.append(row)
    return {"format": FORMAT, "seed": seed, "pool": int(len(pool)), "labeled": 0 if yl is None else int(len(yl)),
            "image_shape": list(x_pool.shape[1:]), "classes": list(classes), "notes": notes,
            "method": "logistic regression on pixels average-pooled to at most "
                      f"{MAX_SIDE}x{MAX_SIDE}; {POOL} unlabeled images; stratified cross-validation over the labels",
            "candidates": results, "seconds": round(time.perf_counter() - start, 2)}
