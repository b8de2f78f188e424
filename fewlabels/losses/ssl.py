"""Self-supervised and contrastive losses, as pure functions of embeddings.

Each takes the embeddings of the whole (global) batch: with several processes the algorithm
gathers them with a gather that passes gradients and every process computes the same loss,
so the statistics these losses need (negatives, cross-correlation, variance) are the global
batch's, and the gradients equal one process's with the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewlabels.losses import at_least_fp32


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross-entropy over 2N views (N positive pairs).

    Each of the 2N embeddings is an anchor; its positive is the other view of the same sample,
    its negatives the other 2N - 2 embeddings; cosine similarities divided by the temperature.
    """
    z = F.normalize(at_least_fp32(torch.cat([z1, z2])), dim=-1)
    n = len(z1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))  # an embedding is not its own candidate
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.2, offset: int = 0) -> torch.Tensor:
    """MoCo v3's contrastive loss: query i's positive is key ``offset + i``, every other key is a negative.

    ``keys`` may be the global batch's and ``queries`` one process's share (``offset``: where its
    share starts). Scaled by 2 * temperature, as in "An Empirical Study of Training Self-Supervised
    Vision Transformers".
    """
    q = F.normalize(at_least_fp32(queries), dim=-1)
    k = F.normalize(at_least_fp32(keys), dim=-1)
    logits = q @ k.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device) + offset) * (2 * temperature)


def byol_regression(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BYOL's 2 - 2 cos(p, z') per pair, averaged; the targets get no gradient."""
    p = F.normalize(at_least_fp32(predictions), dim=-1)
    z = F.normalize(at_least_fp32(targets.detach()), dim=-1)
    return (2 - 2 * (p * z).sum(-1)).mean()


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 5.1e-3) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2, C the cross-correlation of the batch-standardized views."""
    n = len(z1)
    z1, z2 = at_least_fp32(z1), at_least_fp32(z2)
    a = (z1 - z1.mean(0)) / z1.std(0, unbiased=False).clamp(min=1e-6)
    b = (z2 - z2.mean(0)) / z2.std(0, unbiased=False).clamp(min=1e-6)
    c = a.t() @ b / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """VICReg's three terms: invariance (MSE between views), variance (hinge on each dimension's std), covariance.

    variance = mean_j max(0, gamma - sqrt(Var(z_j) + eps)) per view, summed over the two views' means / 2;
    covariance = sum of squared off-diagonal covariances / d per view, summed over the views.
    """
    z1, z2 = at_least_fp32(z1), at_least_fp32(z2)
    invariance = F.mse_loss(z1, z2)
    variance = covariance = z1.new_zeros(())
    for z in (z1, z2):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + eps)
        variance = variance + F.relu(gamma - std).mean() / 2
        cov = z.t() @ z / (len(z) - 1)
        covariance = covariance + (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / z.shape[1]
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def supcon(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (the "L_out" form) over 2N views; label -1 means unlabeled.

    An anchor's positives are the other views of its own sample and, when it is labeled, every
    view of a labeled sample of its class; its loss is the mean over positives of
    -log softmax over all other views. Unlabeled rows have instance positives only (SimCLR's case).
    """
    z = F.normalize(at_least_fp32(torch.cat([z1, z2])), dim=-1)
    n = len(z1)
    y = torch.cat([labels, labels]).to(z.device)
    sample = torch.arange(n, device=z.device).repeat(2)
    same = (sample[:, None] == sample[None, :]) | ((y[:, None] == y[None, :]) & (y[:, None] >= 0))
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    positives = same & ~self_mask
    sim = (z @ z.t() / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()
