"""The strategies that need a model's class probabilities: they pick samples the model is unsure of.

- ``margin``: smallest p1 - p2 (top two class probabilities). ``entropy``: largest -sum p log p.
- ``badge`` (BADGE): gradient embeddings g = (p - onehot(argmax p)) outer h of the last layer's
  cross-entropy at the predicted label, then k-means++ seeding over g (first pick the largest
  norm, then each next one with probability proportional to the squared distance to the nearest pick).
"""

from __future__ import annotations

import numpy as np

from fewlabels.select.coverage import Ranked
from fewlabels.select.distances import sq_dists


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
