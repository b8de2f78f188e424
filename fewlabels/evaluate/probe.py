"""Scoring a representation with a few labels (kNN, a linear probe, label spreading) and writing embeddings.

A run's backbone features of the training pool and the test set are computed once; each
labeled split (the run's own, or new ones drawn by seed) then fits a cheap classifier on the
labeled rows' features and is scored on the test set. The linear probe is scikit-learn's
multinomial logistic regression on L2-normalized features (C chosen once, not on the test
set); label spreading also sees up to ``max_unlabeled`` unlabeled rows of the pool.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fewlabels import data as data_mod
from fewlabels.data import DataSource
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.metrics import accuracy, predict_outputs
from fewlabels.evaluate.representation import knn_predict

METHODS = ("knn", "linear", "label-spreading")


def embed(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, channels_last: bool = False) -> torch.Tensor:
    """The backbone's features (N, D) of ``x``, in eval mode."""
    return predict_outputs(model, x, batch_size, "cpu", channels_last)[1]


def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int) -> np.ndarray:
    """Class probabilities (N, num_classes) for ``test_f`` from the linear probe: logistic regression, C=10, on
    L2-normalized features; classes without a labeled sample get probability 0."""
    from sklearn.linear_model import LogisticRegression

    a = F.normalize(train_f.float(), dim=-1).numpy()
    b = F.normalize(test_f.float(), dim=-1).numpy()
    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(a, train_y.numpy())
    out = np.zeros((len(b), num_classes))
    out[:, clf.classes_] = clf.predict_proba(b)
    return out


def fit_predict(method: str, train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                unlabeled_f: torch.Tensor | None = None) -> torch.Tensor:
    """Class predictions for ``test_f`` from a classifier fitted on the labeled features ``train_f``."""
    if method == "knn":
        return knn_predict(train_f, train_y, test_f, num_classes)
    a = F.normalize(train_f.float(), dim=-1).numpy()
    b = F.normalize(test_f.float(), dim=-1).numpy()
    if method == "linear":
        return torch.as_tensor(linear_probe(train_f, train_y, test_f, num_classes).argmax(1))
    if method == "label-spreading":
        from sklearn.semi_supervised import LabelSpreading

        u = F.normalize(unlabeled_f.float(), dim=-1).numpy() if unlabeled_f is not None else np.empty((0, a.shape[1]))
        clf = LabelSpreading(kernel="knn", n_neighbors=min(10, len(a) + len(u) - 1), max_iter=100)
        clf.fit(np.concatenate([a, u]), np.concatenate([train_y.numpy(), -np.ones(len(u), dtype=np.int64)]))
        return torch.as_tensor(clf.predict(b))
    raise FewLabelsError(f"Unknown probe method '{method}': choose one of {', '.join(METHODS)}.")


def probe(model: nn.Module, source: DataSource, method: str = "knn", labels_per_class: int | None = 4,
          num_labels: int | None = None, seeds: list[int] | tuple[int, ...] = (0,), max_unlabeled: int = 10000,
          channels_last: bool = False) -> dict[str, Any]:
    """Test accuracy of ``method`` on the model's features, per labeled split (one per seed), with mean and std."""
    if method not in METHODS:
        raise FewLabelsError(f"Unknown probe method '{method}': choose one of {', '.join(METHODS)}.")
    if source.test is None:
        raise FewLabelsError(f"{source.train.name} has no test set to score the representation on.")
    train, test = source.train, source.test
    pool_f = embed(model, train.x, channels_last=channels_last)
    test_f = embed(model, test.x, channels_last=channels_last)
    k = len(train.classes)
    per_seed = []
    for seed in seeds:
        split = data_mod.split(train.y, labels_per_class, num_labels, 0, seed, train.classes)
        labeled = torch.as_tensor(split.labeled, dtype=torch.int64)
        unlabeled = torch.as_tensor(split.unlabeled[:max_unlabeled], dtype=torch.int64)
        predicted = fit_predict(method, pool_f[labeled], train.y[labeled], test_f, k, pool_f[unlabeled])
        per_seed.append({"seed": int(seed), "num_labeled": len(labeled), "accuracy": accuracy(test.y, predicted)})
    accs = [r["accuracy"] for r in per_seed]
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"method": method, "dataset": train.name, "labels_per_class": labels_per_class, "num_labels": num_labels,
            "feature_dim": int(pool_f.shape[1]), "splits": per_seed, "accuracy_mean": mean, "accuracy_std": std}


def embeddings_npz(model: nn.Module, source: DataSource, channels_last: bool = False) -> dict[str, np.ndarray]:
    """Arrays in the ``.npz`` layout ``train --dataset`` reads: X, y (-1 unlabeled), X_test, y_test, classes."""
    arrays = {"X": embed(model, source.train.x, channels_last=channels_last).numpy(),
              "y": source.train.y.numpy().astype(np.int64), "classes": np.asarray(source.train.classes)}
    if source.test is not None:
        arrays["X_test"] = embed(model, source.test.x, channels_last=channels_last).numpy()
        arrays["y_test"] = source.test.y.numpy().astype(np.int64)
    return arrays
