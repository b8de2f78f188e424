"""Which unlabeled samples to label next: selection strategies over an embedding of the pool.

Every strategy reads the pool's features ``(N, D)`` (rows are L2-normalized first: distances are
those of the unit sphere, as self-supervised embeddings are compared), the indices already
labeled, and for the uncertainty strategies class probabilities ``(N, K)``. Each returns a
*ranked* list of candidates, longer than the budget where it can, with a reason per pick; the
class-coverage pass then takes the budget from it (``fewlabels.select.coverage``).

The strategies that need only the embedding (typiclust, probcover, coreset) live in ``representative.py``,
those that need a model's probabilities (margin, entropy, badge) in ``uncertainty.py``, each described there;
this module chooses among them:

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
from fewlabels.select.distances import normalize
from fewlabels.select.representative import coreset, probcover, typiclust
from fewlabels.select.uncertainty import badge, entropy, margin
from fewlabels.utils.threads import one_blas_thread

STRATEGIES = ("auto", "typiclust", "probcover", "margin", "entropy", "badge", "coreset", "random")
NEEDS_PROBS = ("margin", "entropy", "badge")
SWITCH_PER_CLASS = 10  # labels per class from which auto trusts the model's uncertainty
EXTRA = 2  # the ranked list holds up to EXTRA x budget candidates, for the class-coverage pass


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
