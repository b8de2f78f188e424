"""Which unlabeled samples to label next: selection strategies over an embedding of the pool.

Every strategy reads the pool's features ``(N, D)`` (rows are L2-normalized first: distances are
those of the unit sphere, as self-supervised embeddings are compared), the indices already
labeled, and for the uncertainty strategies class probabilities ``(N, K)``. Each returns a
*ranked* list of candidates, longer than the budget where it can, with a reason per pick; the
class-coverage pass then takes the budget from it (``fewlabels.select.coverage``).

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
- ``margin``: smallest p1 - p2 (top two class probabilities). ``entropy``: largest -sum p log p.
- ``badge`` (BADGE): gradient embeddings g = (p - onehot(argmax p)) outer h of the last layer's
  cross-entropy at the predicted label, then k-means++ seeding over g (first pick the largest
  norm, then each next one with probability proportional to the squared distance to the nearest pick).
- ``coreset`` (k-center greedy, "Active Learning for Convolutional Neural Networks: A Core-Set
  Approach"): repeatedly the sample farthest from every labeled sample and earlier pick; with no
  labeled sample it starts from the sample nearest the pool's mean.
- ``random``: a seeded permutation.
- ``auto``: ``typiclust`` while fewer than ``SWITCH_PER_CLASS`` labels per class are given
  (or no model's probabilities exist), ``margin`` from then on (TypiClust's finding: typicality
  wins at tiny budgets, uncertainty at larger ones). The switch point is measured in
  bench/selection.py (BENCHMARKS.md, "Which samples to label").
"""

from __future__ import annotations

import numpy as np

from fewlabels.errors import FewLabelsError
from fewlabels.select.coverage import Ranked, cover_classes
from fewlabels.utils.threads import one_blas_thread

STRATEGIES = ("auto", "typiclust", "probcover", "margin", "entropy", "badge", "coreset", "random")
NEEDS_PROBS = ("margin", "entropy", "badge")
SWITCH_PER_CLASS = 10  # labels per class from which auto trusts the model's uncertainty
TYPICAL_K = 20
MIN_CLUSTER = 5
MAX_CLUSTERS = 500
PURITY = 0.95
FLOOR_K = 50  # ProbCover's radius reaches at least this many neighbours for a typical sample
FLOOR_SAMPLE = 2000  # rows whose neighbour distances estimate that median
CHUNK = 2048
EXTRA = 2  # the ranked list holds up to EXTRA x budget candidates, for the class-coverage pass


def normalize(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), never negative."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def kmeans(f: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    k = max(1, min(k, len(f)))
    if len(f) > 20000 and k > 50:
        est = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        est = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return est.fit_predict(f)


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


def margin(probs: np.ndarray, candidates: np.ndarray, length: int) -> Ranked:
    top2 = -np.sort(-probs[candidates], axis=1)[:, :2]
    m = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)
    order = np.argsort(m, kind="stable")[:length]
    return Ranked(candidates[order], [f"margin {m[j]:.3f} between the two likeliest classes" for j in order], m[order])


def entropy(probs: np.ndarray, candidates: np.ndarray, length: int) -> Ranked:
    p = np.clip(probs[candidates], 1e-12, 1.0)
    h = -(p * np.log(p)).sum(1)
    order = np.argsort(-h, kind="stable")[:length]
    return Ranked(candidates[order], [f"entropy {h[j]:.3f} of the predicted classes" for j in order], h[order])


def gradient_embedding(probs: np.ndarray, h: np.ndarray) -> np.ndarray:
    """BADGE's g = (p - onehot(argmax p)) outer h, flattened: the last layer's gradient at the guessed label."""
    p = np.asarray(probs, dtype=np.float32).copy()
    p[np.arange(len(p)), p.argmax(1)] -= 1.0
    return (p[:, :, None] * h[:, None, :]).reshape(len(p), -1)


def kmeanspp(g: np.ndarray, length: int, seed: int) -> tuple[list[int], list[float]]:
    """k-means++ seeding: the largest norm first, then D^2 sampling."""
    rng = np.random.default_rng(seed)
    first = int(np.argmax((g * g).sum(1)))
    picks, scores = [first], [float(np.sqrt((g[first] ** 2).sum()))]
    d = sq_dists(g, g[first:first + 1])[:, 0]
    while len(picks) < min(length, len(g)):
        total = d.sum()
        if total <= 0:
            break
        i = int(rng.choice(len(g), p=d / total))
        picks.append(i)
        scores.append(float(np.sqrt(d[i])))
        d = np.minimum(d, sq_dists(g, g[i:i + 1])[:, 0])
    return picks, scores


def badge(f: np.ndarray, probs: np.ndarray, candidates: np.ndarray, length: int, seed: int) -> Ranked:
    g = gradient_embedding(probs[candidates], f[candidates])
    picks, scores = kmeanspp(g, length, seed)
    return Ranked(candidates[picks], [f"gradient embedding {s:.3g} from earlier picks (k-means++)" for s in scores],
                  np.asarray(scores))


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


def random_order(candidates: np.ndarray, length: int, seed: int) -> Ranked:
    order = np.random.default_rng(seed).permutation(candidates)[:length]
    return Ranked(order, ["random draw"] * len(order), np.zeros(len(order)))


def resolve_auto(num_labeled: int, num_classes: int, have_probs: bool) -> str:
    """auto's choice: typicality while labels are few (or no model exists), margin once the model has enough."""
    if have_probs and num_labeled >= SWITCH_PER_CLASS * max(num_classes, 1):
        return "margin"
    return "typiclust"


@one_blas_thread
def select(features: np.ndarray, labeled: np.ndarray, budget: int, strategy: str = "auto", seed: int = 0,
           probs: np.ndarray | None = None, num_classes: int | None = None,
           labels_given: np.ndarray | None = None, cover: bool = True) -> tuple[Ranked, str]:
    """The ``budget`` pool rows to label next and the strategy that chose them (auto resolved).

    ``labeled``: indices of the rows already labeled; ``probs``: class probabilities of every row
    (a model's, or None); ``labels_given``: the pool's labels, -1 unlabeled, for class coverage;
    ``cover=False`` skips the class-coverage pass (the strategy's own order, as the papers define it).
    """
    if strategy not in STRATEGIES:
        raise FewLabelsError(f"Unknown strategy '{strategy}': choose one of {', '.join(STRATEGIES)}.")
    n = len(features)
    labeled = np.unique(np.asarray(labeled, dtype=np.int64))
    candidates = np.setdiff1d(np.arange(n), labeled)
    if budget < 1:
        raise FewLabelsError(f"--budget must be at least 1, got {budget}.")
    if budget > len(candidates):
        raise FewLabelsError(f"--budget {budget} is larger than the {len(candidates)} unlabeled samples; ask for fewer.")
    # the class count: given, or the model's; unknown at a cold start on unlabeled images, where 10 stands in
    # (it sets ProbCover's pseudo-classes and auto's switch point only)
    k = num_classes or (probs.shape[1] if probs is not None else 10)
    if strategy == "auto":
        strategy = resolve_auto(len(labeled), k, probs is not None)
    if strategy in NEEDS_PROBS and probs is None:
        raise FewLabelsError(f"strategy '{strategy}' needs a model's predictions: give --from RUN_DIR or label at least "
                             "two classes first; for a cold start use typiclust, probcover or coreset.")
    f = normalize(features)
    length = min(len(candidates), EXTRA * budget + (k if probs is not None else 0))
    if strategy == "typiclust":
        ranked = typiclust(f, labeled, budget, seed, length)
    elif strategy == "probcover":
        ranked = probcover(f, labeled, budget, seed, length, k)
    elif strategy == "margin":  # scores every candidate anyway: rank them all, for the coverage pass
        ranked = margin(probs, candidates, len(candidates))
    elif strategy == "entropy":
        ranked = entropy(probs, candidates, len(candidates))
    elif strategy == "badge":
        ranked = badge(f, probs, candidates, length, seed)
    elif strategy == "coreset":
        ranked = coreset(f, labeled, length)
    else:
        ranked = random_order(candidates, length, seed)
    given = labels_given if labels_given is not None else np.full(n, -1)
    return cover_classes(ranked, probs if cover else None, given, budget, candidates, strategy in NEEDS_PROBS), strategy
