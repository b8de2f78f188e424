"""The strategies that need only the embedding: they pick samples that stand for the pool (``strategies`` lists all).

- ``typiclust`` (TypiClust, "Active Learning on a Budget"): k-means with |labeled| + budget
  clusters; take clusters by fewest labeled members, then largest size; from each the most typical
  unlabeled sample, typicality = 1 / mean distance to its ``TYPICAL_K`` nearest neighbours inside
  its cluster. Clusters under ``MIN_CLUSTER`` samples are taken last.
- ``probcover`` (ProbCover, "Active Learning Through a Covering Lens"): balls of radius delta around
  samples; greedily the sample whose ball covers most samples not yet covered (by labeled samples
  or earlier picks). delta is the largest radius at which a fraction ``PURITY`` of the balls is pure
  under k-means pseudo-labels (k = number of classes): purity(delta) = P(d_other > delta), with
  d_other a sample's distance to the nearest sample of another pseudo-class, so
  delta = the (1 - PURITY) quantile of d_other, exactly; but never below the median distance to
  a sample's ``FLOOR_K``-th nearest neighbour (``FLOOR_K`` at most half a class's share of the
  pool). Why the floor: on a weak embedding the pure radius shrinks to balls of a few samples
  (0.098 on Fashion-MNIST's 10-minute SimCLR features) and greedy coverage then chases outliers;
  the floor (K = 50, chosen over 20 and 100 on label spreading's accuracy on the unpicked *pool*
  samples, not the test set) is what lifts ProbCover from random-like picks (bench/selection.py).
- ``coreset`` (k-center greedy, "Active Learning for Convolutional Neural Networks: A Core-Set
  Approach"): repeatedly the sample farthest from every labeled sample and earlier pick; with no
  labeled sample it starts from the sample nearest the pool's mean.
"""

from __future__ import annotations

import numpy as np

from fewlabels.select.coverage import Ranked
from fewlabels.select.distances import CHUNK, kmeans, sq_dists

TYPICAL_K = 20
MIN_CLUSTER = 5
MAX_CLUSTERS = 500
PURITY = 0.95
FLOOR_K = 50  # ProbCover's radius reaches at least this many neighbours for a typical sample
FLOOR_SAMPLE = 2000  # rows whose neighbour distances estimate that median


def typicality(f: np.ndarray, k: int = TYPICAL_K) -> np.ndarray:
    """1 / mean distance to the ``k`` nearest other rows of ``f`` (every row its own query)."""
    n = len(f)
    if n < 2:
        return np.ones(n)
    k = min(k, n - 1)
    out = np.empty(n)
    for i in range(0, n, CHUNK):
        d = sq_dists(f[i:i + CHUNK], f)
        d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf  # not itself
        near = np.partition(d, k - 1, axis=1)[:, :k]
        out[i:i + CHUNK] = 1.0 / (np.sqrt(near).mean(1) + 1e-12)
    return out


def typiclust(f: np.ndarray, labeled: np.ndarray, budget: int, seed: int, length: int) -> Ranked:
    clusters = kmeans(f, min(len(labeled) + budget, MAX_CLUSTERS), seed)
    k = int(clusters.max()) + 1
    size = np.bincount(clusters, minlength=k)
    taken = np.bincount(clusters[labeled], minlength=k) if len(labeled) else np.zeros(k, dtype=np.int64)
    is_labeled = np.zeros(len(f), dtype=bool)
    is_labeled[labeled] = True
    queues: dict[int, list[tuple[int, float]]] = {}
    for c in range(k):
        members = np.flatnonzero(clusters == c)
        t = typicality(f[members])
        order = np.argsort(-t, kind="stable")
        queues[c] = [(int(members[j]), float(t[j])) for j in order if not is_labeled[members[j]]]
    index, reason, score = [], [], []
    while len(index) < length:
        open_ = [c for c in range(k) if queues[c]]
        if not open_:
            break
        # fewest labeled (or picked) members first, then big clusters; tiny clusters last
        c = min(open_, key=lambda c: (size[c] < MIN_CLUSTER, taken[c], -size[c], c))
        i, t = queues[c].pop(0)
        taken[c] += 1
        index.append(i)
        score.append(t)
        reason.append(f"typical sample of cluster {c} ({size[c]} samples, typicality {t:.3g})")
    return Ranked(np.asarray(index, dtype=np.int64), reason, np.asarray(score))


def other_class_distance(f: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """Each row's distance to the nearest row with another pseudo-label."""
    out = np.empty(len(f))
    for i in range(0, len(f), CHUNK):
        d = sq_dists(f[i:i + CHUNK], f)
        d[pseudo[i:i + CHUNK][:, None] == pseudo[None, :]] = np.inf
        out[i:i + CHUNK] = np.sqrt(d.min(1))
    return out


def purity_radius(f: np.ndarray, num_classes: int, seed: int, purity: float = PURITY) -> float:
    """The largest delta at which a fraction ``purity`` of the delta-balls holds one pseudo-class."""
    pseudo = kmeans(f, num_classes, seed)
    if pseudo.max() == pseudo.min():
        return float("inf")
    return float(np.quantile(other_class_distance(f, pseudo), 1.0 - purity))


def neighbour_radius(f: np.ndarray, num_classes: int, seed: int) -> float:
    """The K-th nearest other row's distance, at the median over a sample of rows (the root of the median squared
    distance), K = min(FLOOR_K, half the rows of one class on average)."""
    k = min(FLOOR_K, len(f) // (2 * max(num_classes, 1)), len(f) - 1)
    if k < 1:
        return 0.0
    rows = np.sort(np.random.default_rng(seed).choice(len(f), min(FLOOR_SAMPLE, len(f)), replace=False))
    d = np.concatenate([np.partition(sq_dists(f[rows[i:i + CHUNK]], f), k, axis=1)[:, k]
                        for i in range(0, len(rows), CHUNK)])  # index 0 holds the row itself
    return float(np.sqrt(np.median(d)))


def probcover_radius(f: np.ndarray, num_classes: int, seed: int) -> float:
    return max(purity_radius(f, num_classes, seed), neighbour_radius(f, num_classes, seed))


def ball_graph(f: np.ndarray, delta: float) -> list[np.ndarray]:
    """For each row, the rows within distance delta (itself included)."""
    out = []
    for i in range(0, len(f), CHUNK):
        d = sq_dists(f[i:i + CHUNK], f)
        rows, cols = np.nonzero(d <= delta * delta)
        split_at = np.searchsorted(rows, np.arange(1, len(d)))
        parts = np.split(cols, split_at)
        for j, p in enumerate(parts):
            out.append(np.union1d(p, [i + j]))
    return out


def probcover(f: np.ndarray, labeled: np.ndarray, budget: int, seed: int, length: int, num_classes: int,
              delta: float | None = None) -> Ranked:
    if delta is None:
        delta = probcover_radius(f, num_classes, seed)
    balls = ball_graph(f, delta)
    covered = np.zeros(len(f), dtype=bool)
    for i in labeled:
        covered[balls[i]] = True
    gain = np.array([int((~covered[b]).sum()) for b in balls])
    is_done = np.zeros(len(f), dtype=bool)
    is_done[labeled] = True
    gain[is_done] = -1
    rng = np.random.default_rng(seed)
    index, reason, score = [], [], []
    while len(index) < length and (~is_done).any():
        i = int(np.argmax(gain))
        if gain[i] <= 0:  # everything covered: the rest in a seeded random order, as ProbCover does
            rest = rng.permutation(np.flatnonzero(~is_done))[: length - len(index)]
            index += rest.tolist()
            score += [0.0] * len(rest)
            reason += [f"every sample already within radius {delta:.3g} of a labeled one; random"] * len(rest)
            break
        index.append(i)
        score.append(float(gain[i]))
        reason.append(f"covers {gain[i]} uncovered samples within radius {delta:.3g}")
        newly = balls[i][~covered[balls[i]]]
        covered[newly] = True
        for j in newly:  # each sample whose ball held j loses it (balls are symmetric)
            gain[balls[j]] -= 1
        is_done[i] = True
        gain[is_done] = -1
    return Ranked(np.asarray(index, dtype=np.int64), reason, np.asarray(score))


def coreset(f: np.ndarray, labeled: np.ndarray, length: int) -> Ranked:
    if len(labeled):
        d = np.full(len(f), np.inf)
        for i in range(0, len(labeled), CHUNK):
            d = np.minimum(d, sq_dists(f, f[labeled[i:i + CHUNK]]).min(1))
    else:
        d = sq_dists(f, f.mean(0, keepdims=True))[:, 0]
        d = d.max() - d + 1.0  # the first pick is the sample nearest the mean
    index, reason, score = [], [], []
    if len(labeled):
        d[labeled] = -np.inf
    while len(index) < length:
        i = int(np.argmax(d))
        if not np.isfinite(d[i]) or d[i] < 0:
            break
        first = not len(labeled) and not index
        index.append(i)
        score.append(0.0 if first else float(np.sqrt(d[i])))
        reason.append("the sample nearest the pool's mean" if first else
                      f"farthest from every labeled sample (distance {np.sqrt(d[i]):.3g})")
        d = np.minimum(d, sq_dists(f, f[i:i + 1])[:, 0])
        d[i] = -np.inf
    return Ranked(np.asarray(index, dtype=np.int64), reason, np.asarray(score))
