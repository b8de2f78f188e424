"""Which unlabeled samples count, and how much: thresholding strategies and distribution alignment.

Each strategy is a small ``nn.Module`` called as ``weigh(probs, index)``: probs (B, K) [+ the
samples' positions in the unlabeled pool] -> a per-sample weight in [0, 1]. Running statistics
are registered buffers (so they move with ``.to(device)`` and live in ``state_dict``) and are
averaged or gathered over all processes before they are updated, so every rank keeps the same.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.collectives import all_gather_cat, all_reduce_mean


class DistributionAlignment(nn.Module):
    """ReMixMatch's alignment: p <- normalize(p * p_target / p_model).

    ``p_model`` is a running mean of the model's predictions on unlabeled data (EMA with
    ``momentum``); ``p_target`` is the labeled class distribution (uniform by default).
    """

    def __init__(self, num_classes: int, momentum: float = 0.999, target: torch.Tensor | None = None) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("p_model", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("p_target", target.float() if target is not None else torch.full((num_classes,), 1.0 / num_classes))

    @torch.no_grad()
    def forward(self, probs: torch.Tensor, update: bool = True) -> torch.Tensor:
        if update:
            batch_mean = all_reduce_mean(probs.float().mean(0)).to(self.p_model.device)
            self.p_model = self.momentum * self.p_model + (1 - self.momentum) * batch_mean
        ratio = (self.p_target / self.p_model.clamp(min=1e-6)).to(probs.device)
        aligned = probs * ratio
        return aligned / aligned.sum(dim=-1, keepdim=True)


class FixedThreshold(nn.Module):
    """FixMatch: weight 1 where max prob >= tau, else 0."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return (probs.max(dim=-1).values >= self.tau).float()


class CurriculumThreshold(nn.Module):
    """FlexMatch's curriculum pseudo-labeling: per-class thresholds scaled by learning status.

    sigma_c = number of unlabeled samples whose latest confident prediction is c; beta_c =
    sigma_c / max(max_c sigma, #unused) during warm-up (max over classes only afterwards);
    tau_c = M(beta_c) * tau with the convex mapping M(x) = x / (2 - x).
    """

    def __init__(self, tau: float, num_unlabeled: int, num_classes: int, warmup: bool = True) -> None:
        super().__init__()
        self.tau = tau
        self.num_classes = num_classes
        self.warmup = warmup
        # -1: not confidently predicted yet
        self.register_buffer("predictions", torch.full((num_unlabeled,), -1, dtype=torch.long))

    def class_thresholds(self) -> torch.Tensor:
        counts = torch.bincount(self.predictions[self.predictions >= 0], minlength=self.num_classes).float()
        unused = float((self.predictions < 0).sum())
        denom = max(float(counts.max()), unused) if self.warmup else float(counts.max())
        beta = counts / max(denom, 1.0)
        return beta / (2.0 - beta) * self.tau

    @torch.no_grad()
    def forward(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            raise ValueError("CurriculumThreshold needs the unlabeled samples' indices")
        conf, pred = probs.max(dim=-1)
        thresholds = self.class_thresholds().to(probs.device)
        mask = (conf >= thresholds[pred]).float()
        # learning status: record predictions above the fixed threshold, gathered from every process
        here = self.predictions.device
        all_index = all_gather_cat(index.to(probs.device)).to(here)
        all_conf = all_gather_cat(conf).to(here)
        all_pred = all_gather_cat(pred).to(here)
        sure = all_conf > self.tau
        self.predictions[all_index[sure]] = all_pred[sure]
        return mask


class SelfAdaptiveThreshold(nn.Module):
    """FreeMatch's self-adaptive thresholds.

    Global tau_t = EMA of the mean max confidence; local p_t(c) = EMA of the mean class
    probability; per-class threshold = MaxNorm(p_t)(c) * tau_t. Starts at 1/K, as in the paper.
    """

    def __init__(self, num_classes: int, momentum: float = 0.999) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("global_tau", torch.tensor(1.0 / num_classes))
        self.register_buffer("local_p", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("histogram", torch.full((num_classes,), 1.0 / num_classes))  # EMA of the hard-label histogram

    def class_thresholds(self) -> torch.Tensor:
        return self.local_p / self.local_p.max() * self.global_tau

    @torch.no_grad()
    def forward(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        conf, pred = probs.max(dim=-1)
        m = self.momentum
        k = probs.shape[-1]
        here = self.global_tau.device
        self.global_tau = m * self.global_tau + (1 - m) * all_reduce_mean(conf.float().mean()).to(here)
        self.local_p = m * self.local_p + (1 - m) * all_reduce_mean(probs.float().mean(0)).to(here)
        hist = torch.bincount(pred, minlength=k).float().to(here) / len(pred)
        self.histogram = m * self.histogram + (1 - m) * all_reduce_mean(hist)
        return (conf >= self.class_thresholds().to(probs.device)[pred]).float()


class TruncatedGaussianWeight(nn.Module):
    """SoftMatch's soft weighting: lambda(p) = exp(-(max p - mu)^2 / (2 sigma^2 / n^2)) below mu, 1 above.

    mu and sigma^2 are EMAs of the batch mean and variance of the max confidence; ``n_sigma``
    (2 by default) sets how many standard deviations below mu the weight stays meaningful.
    """

    def __init__(self, num_classes: int, momentum: float = 0.999, n_sigma: float = 2.0) -> None:
        super().__init__()
        self.momentum = momentum
        self.n_sigma = n_sigma
        self.register_buffer("mu", torch.tensor(1.0 / num_classes))
        self.register_buffer("var", torch.tensor(1.0))

    @torch.no_grad()
    def forward(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        conf = probs.max(dim=-1).values.float()
        m = self.momentum
        here = self.mu.device
        everyone = all_gather_cat(conf)  # the global batch's statistics (a mean of per-rank variances is not its variance)
        batch_mu = everyone.mean().to(here)
        batch_var = (everyone.var(unbiased=True) if len(everyone) > 1 else torch.zeros((), device=conf.device)).to(here)
        self.mu = m * self.mu + (1 - m) * batch_mu
        self.var = m * self.var + (1 - m) * batch_var
        mu, var = self.mu.to(conf.device), self.var.to(conf.device).clamp(min=1e-8)
        weight = torch.exp(-((conf - mu) ** 2) / (2 * var / self.n_sigma**2))
        return torch.where(conf >= mu, torch.ones_like(weight), weight)
