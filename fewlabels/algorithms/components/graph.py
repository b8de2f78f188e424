"""Labels spread over a k-nearest-neighbour graph of the samples: the harmonic solution with class mass normalization.

"Semi-Supervised Learning Using Gaussian Fields and Harmonic Functions" (Zhu, Ghahramani, Lafferty,
ICML 2003): with labeled nodes clamped to their one-hot labels, the unlabeled nodes' scores F_u solve
the graph Laplace equation  L_uu F_u = W_ul Y_l  (each node the weighted average of its neighbours).
Class mass normalization (same paper) rescales each class's column to equal mass, which keeps a
class whose few labels sit in a sparse region from being swallowed. Edges: a symmetrised kNN graph
with self-tuning Gaussian weights exp(-d^2 / (sigma_i sigma_j)), sigma_i the distance to node i's
k-th neighbour ("Self-Tuning Spectral Clustering", Zelnik-Manor & Perona). Here the clamped solution
beat the restart-based spreading of Zhou et al. ("Learning with Local and Global Consistency", the
one scikit-learn's LabelSpreading implements) whenever labels were very few: with one label per
class, spreading with restart decays within ~1/(1-alpha) hops and never reaches the far end of a
long cluster (two moons, circles).
"""

from __future__ import annotations

import warnings

import torch

GRAPH_DIMS = 64  # wider features are projected to their top principal directions before the graph is built
PCA_SAMPLE = 10_000  # rows the projection is fitted on (deterministic: evenly spaced rows)


def standardized(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Features on a common scale, projected to GRAPH_DIMS principal directions when wider (distances get cheaper)."""
    z = (x.float() - mean.reshape(1, -1)) / std.reshape(1, -1).clamp(min=1e-6)
    if z.shape[1] <= GRAPH_DIMS:
        return z
    rows = torch.linspace(0, len(z) - 1, min(len(z), PCA_SAMPLE)).long()
    sample = z[rows]
    _, _, vt = torch.linalg.svd(sample - sample.mean(0), full_matrices=False)
    return (z - sample.mean(0)) @ vt[:GRAPH_DIMS].T


def knn_graph(z: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """The symmetric sparse (n, n) weight matrix of the k-nearest-neighbour graph of the rows of ``z``."""
    n = len(z)
    k = min(k, n - 1)
    squares = (z * z).sum(1)
    dist2 = torch.empty(n, k)
    neighbours = torch.empty(n, k, dtype=torch.int64)
    for start in range(0, n, chunk):
        block = torch.addmm(squares[None], z[start : start + chunk], z.T, alpha=-2.0)  # |a|^2 - 2ab + |b|^2, less the |a|^2
        block += squares[start : start + chunk, None]
        block[torch.arange(len(block)), torch.arange(start, start + len(block))] = float("inf")  # not its own neighbour
        values, index = block.topk(k, largest=False)
        dist2[start : start + chunk], neighbours[start : start + chunk] = values.clamp(min=0), index
    sigma = dist2[:, -1].sqrt().clamp(min=1e-8)
    weights = torch.exp(-dist2 / (sigma[:, None] * sigma[neighbours]))
    rows = torch.arange(n).repeat_interleave(k)
    w = torch.sparse_coo_tensor(torch.stack([rows, neighbours.reshape(-1)]), weights.reshape(-1), (n, n),
                                check_invariants=False)
    return (w + w.transpose(0, 1)).coalesce()


def harmonic_labels(w: torch.Tensor, labeled: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    max_iter: int = 2000, tol: float = 1e-6) -> torch.Tensor:
    """Class scores (n, K), rows summing to 1, of every node of graph ``w`` given the labeled nodes' labels.

    Solves L_uu F_u = W_ul Y_l by conjugate gradients, one column per class at once; labeled rows
    keep their one-hot label; class mass normalization, then each row normalized. A node with no
    path to any label gets the uniform distribution.
    """
    n = w.shape[0]
    is_labeled = torch.zeros(n, dtype=torch.bool)
    is_labeled[labeled] = True
    unlabeled = (~is_labeled).nonzero().squeeze(1)
    y = torch.zeros(n, num_classes)
    y[labeled, labels] = 1.0
    idx, val = w.indices(), w.values()
    degree = torch.zeros(n).index_add_(0, idx[0], val)
    keep = ~is_labeled[idx[0]] & ~is_labeled[idx[1]]  # W_uu, renumbered to unlabeled positions
    position = torch.full((n,), -1, dtype=torch.int64)
    position[unlabeled] = torch.arange(len(unlabeled))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta": the product used here is not
        w_uu = torch.sparse_coo_tensor(position[idx[:, keep]], val[keep], (len(unlabeled), len(unlabeled)),
                                       check_invariants=False).to_sparse_csr()
    into_u = ~is_labeled[idx[0]] & is_labeled[idx[1]]
    b = torch.zeros(len(unlabeled), num_classes).index_add_(0, position[idx[0, into_u]], val[into_u, None] * y[idx[1, into_u]])
    d_u = degree[unlabeled][:, None] + 1e-9

    def laplacian(f: torch.Tensor) -> torch.Tensor:
        return d_u * f - w_uu @ f

    f = b / d_u  # a Jacobi step as the start
    r = b - laplacian(f)
    p = r.clone()
    rr = (r * r).sum(0)
    start = rr.clamp(min=1e-30)
    for _ in range(max_iter):
        if bool((rr <= tol * tol * start).all()):
            break
        lp = laplacian(p)
        alpha = rr / (p * lp).sum(0).clamp(min=1e-30)
        f = f + alpha * p
        r = r - alpha * lp
        rr_new = (r * r).sum(0)
        p = r + (rr_new / rr.clamp(min=1e-30)) * p
        rr = rr_new
    f = f.clamp(min=0)
    f = f / f.sum(0, keepdim=True).clamp(min=1e-12)  # class mass normalization
    scores = y.clone()
    total = f.sum(1, keepdim=True)
    scores[unlabeled] = torch.where(total > 0, f / total.clamp(min=1e-12), torch.full_like(f, 1.0 / num_classes))
    return scores
