"""Distances on the pool's embedding, shared by the strategies: rows on the unit sphere, squared distances, k-means."""

from __future__ import annotations

import numpy as np

CHUNK = 2048  # rows per block of a distance matrix, so that (CHUNK, N) floats fit in memory


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
