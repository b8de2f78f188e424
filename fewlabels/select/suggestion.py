"""``suggest`` and ``check-labels`` on data and runs: the pool, its features and probabilities, then the math.

The math lives in ``strategies`` and ``check_labels`` (arrays in, arrays out); this module finds
the arrays: which samples are labeled, the features (a run's, or the label-free embedding of
``pool``), and class probabilities (the run's predictions, or a linear probe on the labeled rows).
The faces (``fewlabels suggest`` / ``check-labels``, ``fewlabels.suggest``) load the run and print;
``run`` here is a loaded ``fewlabels.Run``, ``run_name`` its path for messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fewlabels.errors import FewLabelsError
from fewlabels.select.label_check import check_counts, check_labels
from fewlabels.select.pool import (
    Pool,
    check_run_fits,
    label_free_features,
    load_pool,
    probe_probs,
    run_labels,
    run_outputs,
)
from fewlabels.select.strategies import STRATEGIES, select

VIEWS = 4  # augmented views per labeled sample in check-labels


def check_budget(budget: int, pool: Pool) -> None:
    """Before any embedding: a typo should not cost minutes."""
    unlabeled = int((pool.labels < 0).sum())
    if budget > unlabeled:
        raise FewLabelsError(f"--budget {budget} is larger than the {unlabeled} unlabeled samples; ask for fewer.")


def check_seed(seed: int) -> None:
    """The seed within train's bounds (TrainConfig.seed): scikit-learn and numpy take nothing else."""
    from fewlabels.train.config import bounds_of, bounds_text

    low, high = bounds_of("seed")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not low <= seed <= high:
        raise FewLabelsError(f"seed must be a whole number, {bounds_text(low, high)}, got {seed!r}.")


@dataclass
class Suggestion:
    rows: list[dict]  # one per pick, best first, in the picks.csv layout
    strategy: str  # the strategy that chose (auto resolved)
    embedding: str  # what the features were
    pool: Pool


def suggest(dataset: str, budget: int, strategy: str = "auto", run=None, seed: int = 0, data_dir: str | None = None,
            run_name: str = "the run", encoder=None) -> Suggestion:
    """The ``budget`` unlabeled samples of ``dataset`` most worth labeling next, with reasons.

    ``encoder`` (a loaded ``fewlabels.foundation.Encoder``, instead of a run) gives the features in place of the PCA
    of the raw samples; the probabilities then come from a linear probe on its embeddings of the labeled samples."""
    if strategy not in STRATEGIES:
        raise FewLabelsError(f"Unknown strategy '{strategy}': choose one of {', '.join(STRATEGIES)}.")
    if budget < 1:
        raise FewLabelsError(f"--budget must be at least 1, got {budget}.")
    check_seed(seed)
    pool = load_pool(dataset, data_dir)
    if run is not None:
        check_run_fits(run, pool, dataset, run_name)
        if pool.kind == "builtin":
            pool.labels = run_labels(run.config, pool)
        check_budget(budget, pool)
        features, probs = run_outputs(run, pool.x)
        embedding = f"backbone features of {run_name} ({run.config.algorithm}, {run.config.model})"
        classes = list(run.classes)
    else:
        check_budget(budget, pool)
        if encoder is not None:
            from fewlabels.foundation import embed_images

            features = embed_images(encoder, pool.x).numpy()
            embedding = f"embeddings of {encoder.name} ({features.shape[1]} dimensions)"
        else:
            features = label_free_features(pool.x, seed)
            embedding = f"PCA of the raw samples to {features.shape[1]} dimensions (no run given)"
        classes = pool.classes
        probs = probe_probs(features, pool.labels, len(classes)) if classes else None
        if probs is not None:
            embedding += "; probabilities from a linear probe on the labeled samples"
    num_classes = len(classes) if classes else None
    ranked, chosen = select(features, pool.labeled, budget, strategy, seed, probs, num_classes, pool.labels)
    rows = []
    for rank, (i, reason, score) in enumerate(zip(ranked.index.tolist(), ranked.reason, ranked.score.tolist()), 1):
        row = {"rank": rank, "sample": pool.names[i], "strategy": chosen, "reason": reason, "score": f"{score:.6g}"}
        if probs is not None:
            c = int(probs[i].argmax())
            row["predicted"] = classes[c]
            row["confidence"] = f"{probs[i, c]:.4f}"
        rows.append(row)
    return Suggestion(rows, chosen, embedding, pool)


@dataclass
class LabelCheck:
    rows: list[dict]  # every labeled sample, most doubtful first
    flagged: int
    dataset: str
    num_labeled: int


def augmented_features(run, x: torch.Tensor, views: int, seed: int) -> list[np.ndarray]:
    """A run's features of ``views`` weakly augmented copies of ``x`` (flips only where the run used them)."""
    if not run.is_image:
        return []
    from fewlabels.augment import Weak

    gen = torch.Generator().manual_seed(seed)
    hflip = bool(run.config.hflip) if run.config.hflip is not None else False
    weak = Weak(hflip=hflip)
    return [run_outputs(run, weak(x, gen))[0] for _ in range(views)]


def check_run(run, run_name: str = "the run", dataset: str | None = None, data_dir: str | None = None, seed: int = 0,
              views: int = VIEWS, encoder=None) -> LabelCheck:
    """Every labeled sample of a run's data, ranked by how doubtful its given label looks.

    ``encoder`` (a loaded ``fewlabels.foundation.Encoder``) gives the features in place of the run's backbone, without
    augmented views (each view would cost a full pass of the encoder)."""
    check_seed(seed)
    dataset = dataset or run.config.dataset
    pool = load_pool(dataset, data_dir or run.config.data_dir)
    check_run_fits(run, pool, dataset, run_name, "check a run on the data it was trained on (leave --dataset out)")
    if pool.kind == "builtin":
        pool.labels = run_labels(run.config, pool)
    labeled = pool.labeled
    labels = pool.labels[labeled]
    classes = list(run.classes)
    check_counts(labels, len(classes), classes)  # before any embedding
    if encoder is not None:
        from fewlabels.foundation import embed_images

        features, view_feats = embed_images(encoder, pool.x[labeled]).numpy(), []
    else:
        features, _ = run_outputs(run, pool.x[labeled])
        view_feats = augmented_features(run, pool.x[labeled], views, seed)
    result = check_labels(features, labels, len(classes), seed, view_feats or None, class_names=classes)
    rows = []
    for rank, j in enumerate(result["order"].tolist(), 1):
        rows.append({"rank": rank, "sample": pool.names[labeled[j]], "given": classes[labels[j]],
                     "suspected": classes[result["suspected"][j]], "score": f"{result['score'][j]:.4f}",
                     "p_given": f"{result['p_given'][j]:.4f}", "flagged": int(result["flagged"][j])})
    return LabelCheck(rows, int(result["flagged"].sum()), dataset, len(labeled))
