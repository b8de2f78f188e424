"""The scores behind each verdict, computed on pooled pixels with logistic regressions (see analysis.py for
the overview): telling x from g(x) without labels, the cross-validated cost of invariance over the labels, and
the classes a judge of the labels sees g swap (collisions)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewlabels.symmetry.transforms import DIHEDRAL, dihedral, orbit

MAX_SIDE = 14  # images are average-pooled to at most this side before the classifiers
REAL_QUANTILE = 0.8  # g(x) "looks real" when it is as near to a real image as 80% of real images are
COLLISION_SHARE = 0.5  # of class a's images whose g(x) looks real, the share g sends to one class b
COLLISION_BACK = 0.25  # and of b's, the share g sends back to a
COLLISION_BACK_SYMMETRIC = 0.5  # ... when x and g(x) look alike (a weak judge's confusions look like swaps there)
COLLISION_MIN = 4  # images moved between the two, at least
EXAMPLES = 4  # example images per collision (indices into the images given)


def pixel_features(x: torch.Tensor, blur: bool = False, contrast: bool = False) -> np.ndarray:
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


def logreg(c: float = 0.5):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=300, tol=1e-3)


def fit(model, x: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: 300 iterations are plenty for a score
        return model.fit(x, y)


def standardizer(x: np.ndarray):
    mean, std = x.mean(0), x.std(0)
    std = np.maximum(std, 0.5 * std.mean())  # near-constant pixels (a digit's border) must not blow up a small shift
    return lambda z: (z - mean) / std


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def shrink(x: torch.Tensor) -> torch.Tensor:
    """Float images in 0..1, larger than 2 * MAX_SIDE on a side, area-averaged down to about that (in chunks, so a
    few thousand 128 px photos never sit in memory as floats at full size). Area averaging over bins placed
    symmetrically commutes with every flip and quarter turn, so the square symmetries' scores do not change."""
    h, w = x.shape[2], x.shape[3]
    scale = 2 * MAX_SIDE / max(h, w)
    if scale >= 1:
        return to_float(x)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return torch.cat([F.adaptive_avg_pool2d(to_float(x[i:i + 256]), size) for i in range(0, len(x), 256)])


def distinguishability(real: torch.Tensor, moved: torch.Tensor, standardize, seed: int) -> tuple[float, np.ndarray]:
    """Held-out accuracy of telling ``real`` from ``moved`` = g(other images) (2-fold), and whether each held-out
    image (real ones first) was told right (what the resamples draw from)."""
    xs = standardize(np.concatenate([pixel_features(real), pixel_features(moved)]))
    ys = np.concatenate([np.ones(len(real)), np.zeros(len(moved))])
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(xs)) % 2
    p_real = np.empty(len(xs))
    for f in (0, 1):
        model = fit(logreg(), xs[fold != f], ys[fold != f])
        p_real[fold == f] = model.predict_proba(xs[fold == f])[:, 1]
    hits = (p_real >= 0.5) == (ys == 1)
    return float(hits.mean()), hits


def group_images(x: torch.Tensor, name: str, g) -> list[torch.Tensor]:
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
        models.append(fit(logreg(), x, y))
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
            "labels_per_class": int(np.bincount(y)[present].min()),
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
