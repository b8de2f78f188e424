"""Shared pieces of the consistency-regularization family, written once.

Each is a plain object or function: thresholding strategies (fixed, curriculum,
self-adaptive, soft weighting), distribution alignment, sharpening, mixup, an EMA
teacher and the VAT perturbation. Running statistics are averaged over all
processes before they are updated (``all_reduce_mean``), so several ranks keep
identical state, and live in ``state_dict`` so checkpoints carry them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.losses import cross_entropy, masked_mean


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over all processes (``t`` itself with one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Rows of ``t`` from every process, concatenated in rank order (equal sizes assumed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)
    return t


def mean_by_index(index: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct indices and, for each, the mean of its rows of ``values``: (U,), (U, ...).

    Per-sample state is written with ``table[rows] = mean``: a batch may hold a sample twice (the
    index streams wrap across epochs), and plain indexed assignment would keep only its last copy.
    A row seen once comes back exactly as it was.
    """
    rows, inverse = torch.unique(index, return_inverse=True)
    sums = torch.zeros((len(rows), *values.shape[1:]), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    counts = torch.bincount(inverse, minlength=len(rows)).to(values.dtype)
    return rows, sums / counts.view(-1, *([1] * (values.dim() - 1)))


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T), renormalised: lower entropy for T < 1 (MixMatch, UDA)."""
    q = p.pow(1.0 / temperature)
    return q / q.sum(dim=-1, keepdim=True)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator | None = None,
          keep_first: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convex combinations of the batch with a shuffled copy of itself.

    lambda ~ Beta(alpha, alpha), one per sample; with ``keep_first`` lambda = max(lambda, 1 - lambda)
    so each mixed sample stays closer to its own origin (MixMatch). Returns mixed x, y and lambda.
    """
    n = len(x)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((n,)).to(x.device) if gen is None else _beta_with_generator(alpha, n, gen).to(x.device)
    if keep_first:
        lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(n, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device)
    lx = lam.view(-1, *([1] * (x.dim() - 1)))
    ly = lam.view(-1, 1)
    return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm], lam


def _beta_with_generator(alpha: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """Beta(alpha, alpha) from two Gamma draws made with an explicit generator (reproducible, resumable)."""
    g1 = torch._standard_gamma(torch.full((n,), float(alpha), device=gen.device), generator=gen)
    g2 = torch._standard_gamma(torch.full((n,), float(alpha), device=gen.device), generator=gen)
    return g1 / (g1 + g2)


class DistributionAlignment:
    """ReMixMatch's alignment: p <- normalize(p * p_target / p_model).

    ``p_model`` is a running mean of the model's predictions on unlabeled data (EMA with
    ``momentum``); ``p_target`` is the labeled class distribution (uniform by default).
    """

    def __init__(self, num_classes: int, momentum: float = 0.999, target: torch.Tensor | None = None) -> None:
        self.momentum = momentum
        self.p_model = torch.full((num_classes,), 1.0 / num_classes)
        self.p_target = target.float() if target is not None else torch.full((num_classes,), 1.0 / num_classes)

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, update: bool = True) -> torch.Tensor:
        if update:
            batch_mean = all_reduce_mean(probs.float().mean(0)).cpu()
            self.p_model = self.momentum * self.p_model + (1 - self.momentum) * batch_mean
        ratio = (self.p_target / self.p_model.clamp(min=1e-6)).to(probs.device)
        aligned = probs * ratio
        return aligned / aligned.sum(dim=-1, keepdim=True)

    def state_dict(self) -> dict[str, Any]:
        return {"p_model": self.p_model.clone(), "p_target": self.p_target.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p_model = state["p_model"].clone()
        self.p_target = state["p_target"].clone()


# ---- thresholding strategies: probs (B, K) [+ sample indices] -> per-sample weight in [0, 1]


class FixedThreshold:
    """FixMatch: weight 1 where max prob >= tau, else 0."""

    def __init__(self, tau: float) -> None:
        self.tau = tau

    def __call__(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return (probs.max(dim=-1).values >= self.tau).float()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CurriculumThreshold:
    """FlexMatch's curriculum pseudo-labeling: per-class thresholds scaled by learning status.

    sigma_c = number of unlabeled samples whose latest confident prediction is c; beta_c =
    sigma_c / max(max_c sigma, #unused) during warm-up (max over classes only afterwards);
    tau_c = M(beta_c) * tau with the convex mapping M(x) = x / (2 - x).
    """

    def __init__(self, tau: float, num_unlabeled: int, num_classes: int, warmup: bool = True) -> None:
        self.tau = tau
        self.num_classes = num_classes
        self.warmup = warmup
        self.predictions = torch.full((num_unlabeled,), -1, dtype=torch.long)  # -1: not confidently predicted yet

    def class_thresholds(self) -> torch.Tensor:
        counts = torch.bincount(self.predictions[self.predictions >= 0], minlength=self.num_classes).float()
        unused = float((self.predictions < 0).sum())
        denom = max(float(counts.max()), unused) if self.warmup else float(counts.max())
        beta = counts / max(denom, 1.0)
        return beta / (2.0 - beta) * self.tau

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            raise ValueError("CurriculumThreshold needs the unlabeled samples' indices")
        conf, pred = probs.max(dim=-1)
        thresholds = self.class_thresholds().to(probs.device)
        mask = (conf >= thresholds[pred]).float()
        # learning status: record predictions above the fixed threshold, gathered from every process
        all_index = all_gather_cat(index.to(probs.device)).cpu()
        all_conf = all_gather_cat(conf).cpu()
        all_pred = all_gather_cat(pred).cpu()
        sure = all_conf > self.tau
        self.predictions[all_index[sure]] = all_pred[sure]
        return mask

    def state_dict(self) -> dict[str, Any]:
        return {"predictions": self.predictions.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.predictions = state["predictions"].clone()


class SelfAdaptiveThreshold:
    """FreeMatch's self-adaptive thresholds.

    Global tau_t = EMA of the mean max confidence; local p_t(c) = EMA of the mean class
    probability; per-class threshold = MaxNorm(p_t)(c) * tau_t. Starts at 1/K, as in the paper.
    """

    def __init__(self, num_classes: int, momentum: float = 0.999) -> None:
        self.momentum = momentum
        self.global_tau = torch.tensor(1.0 / num_classes)
        self.local_p = torch.full((num_classes,), 1.0 / num_classes)
        self.histogram = torch.full((num_classes,), 1.0 / num_classes)  # EMA of the hard-label histogram

    def class_thresholds(self) -> torch.Tensor:
        return self.local_p / self.local_p.max() * self.global_tau

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        conf, pred = probs.max(dim=-1)
        m = self.momentum
        k = probs.shape[-1]
        self.global_tau = m * self.global_tau + (1 - m) * all_reduce_mean(conf.float().mean()).cpu()
        self.local_p = m * self.local_p + (1 - m) * all_reduce_mean(probs.float().mean(0)).cpu()
        hist = torch.bincount(pred, minlength=k).float().cpu() / len(pred)
        self.histogram = m * self.histogram + (1 - m) * all_reduce_mean(hist)
        return (conf >= self.class_thresholds().to(probs.device)[pred]).float()

    def state_dict(self) -> dict[str, Any]:
        return {"global_tau": self.global_tau.clone(), "local_p": self.local_p.clone(), "histogram": self.histogram.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_tau = state["global_tau"].clone()
        self.local_p = state["local_p"].clone()
        self.histogram = state["histogram"].clone()


class TruncatedGaussianWeight:
    """SoftMatch's soft weighting: lambda(p) = exp(-(max p - mu)^2 / (2 sigma^2 / n^2)) below mu, 1 above.

    mu and sigma^2 are EMAs of the batch mean and variance of the max confidence; ``n_sigma``
    (2 by default) sets how many standard deviations below mu the weight stays meaningful.
    """

    def __init__(self, num_classes: int, momentum: float = 0.999, n_sigma: float = 2.0) -> None:
        self.momentum = momentum
        self.n_sigma = n_sigma
        self.mu = torch.tensor(1.0 / num_classes)
        self.var = torch.tensor(1.0)

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        conf = probs.max(dim=-1).values.float()
        m = self.momentum
        everyone = all_gather_cat(conf)  # the global batch's statistics (a mean of per-rank variances is not its variance)
        batch_mu = everyone.mean().cpu()
        batch_var = (everyone.var(unbiased=True) if len(everyone) > 1 else torch.zeros((), device=conf.device)).cpu()
        self.mu = m * self.mu + (1 - m) * batch_mu
        self.var = m * self.var + (1 - m) * batch_var
        mu, var = self.mu.to(conf.device), self.var.to(conf.device).clamp(min=1e-8)
        weight = torch.exp(-((conf - mu) ** 2) / (2 * var / self.n_sigma**2))
        return torch.where(conf >= mu, torch.ones_like(weight), weight)

    def state_dict(self) -> dict[str, Any]:
        return {"mu": self.mu.clone(), "var": self.var.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mu = state["mu"].clone()
        self.var = state["var"].clone()


class EMATeacher:
    """A slowly moving copy of the student (Mean Teacher): theta' <- a theta' + (1 - a) theta."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for t, s in zip(self.module.parameters(), model.parameters()):
            t.lerp_(s.detach(), 1.0 - d)
        for t, s in zip(self.module.buffers(), model.buffers()):
            t.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(q)) per sample."""
    p = F.softmax(p_logits, dim=-1)
    return (p * (F.log_softmax(p_logits, dim=-1) - F.log_softmax(q_logits, dim=-1))).sum(-1)


def vat_perturbation(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, xi: float = 1e-3, eps: float = 6.0,
                     power_iterations: int = 1, gen: torch.Generator | None = None) -> torch.Tensor:
    """The virtual adversarial direction r_adv = eps * d / ||d||, d found by power iteration.

    Label-free: it maximises KL(p(x) || p(x + r)) around the model's own prediction.
    BatchNorm running statistics are not updated by the probing passes. The paper's xi = 1e-6
    is lost to float32 rounding (the probe's direction comes out nearly random), hence 1e-3.
    """
    def unit(v: torch.Tensor) -> torch.Tensor:
        flat = v.flatten(1)
        return (flat / (flat.norm(dim=1, keepdim=True) + 1e-12)).view_as(v)

    target = logits.detach()
    d = unit(torch.randn(x.shape, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device))
    with bn_stats_frozen(model):
        for _ in range(power_iterations):
            d = (xi * d).requires_grad_(True)
            adv_logits, _ = model(x.detach() + d)
            dist_ = kl_divergence(target, adv_logits).mean()
            (grad,) = torch.autograd.grad(dist_, d)
            d = unit(grad.detach())
    return eps * d


@contextmanager
def bn_stats_frozen(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave BatchNorm running statistics alone (guessing, adversarial probes)."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def ramp_steps(fraction: float, total_steps: int) -> int:
    """A ramp-up given as a fraction of the run, in steps."""
    return int(round(fraction * total_steps))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of softmax(logits) per sample (nats)."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def linear_rampup(step: int, length: int) -> float:
    """0 -> 1 linearly over ``length`` steps (1 at once when length is 0)."""
    return 1.0 if length <= 0 else min(1.0, step / length)


def sigmoid_rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2), the ramp of the Pi-model and Mean Teacher papers."""
    if length <= 0:
        return 1.0
    t = min(1.0, step / length)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def joint_forward(model: nn.Module, *inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One forward pass over several batches (BatchNorm sees them together), split back: logits, features."""
    logits, feats = model(torch.cat(inputs))
    sizes = [len(x) for x in inputs]
    return list(logits.split(sizes)), list(feats.split(sizes))


def pseudo_label_consistency(model: nn.Module, batch: dict, weigh, lambda_u: float, temperature: float = 1.0,
                             align=None) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The step the threshold family shares (FixMatch, FlexMatch, FreeMatch, SoftMatch).

    One joint forward of labeled-weak, unlabeled-weak and unlabeled-strong; hard pseudo-labels
    from the weak view (optionally aligned), without gradient; each unlabeled sample weighted by
    ``weigh(probs, index)`` (a threshold strategy); cross-entropy of the strong view against them.
    Returns the loss dict plus the strong-view logits and the weights, for extra terms.
    """
    x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
    unl = batch["unlabeled"]
    (logits_l, logits_weak, logits_strong), _ = joint_forward(model, x_l, unl["weak"], unl["strong"])
    unsup, pseudo, weight = thresholded_consistency(logits_weak, logits_strong, weigh, unl.get("index"), temperature, align)
    sup = cross_entropy(logits_l, y_l)
    out = {"total": sup + lambda_u * unsup, "sup": sup, "unsup": unsup, "mask_rate": weight.float().mean(),
           "pseudo_labels": pseudo, "mask": weight >= 0.5}
    return out, logits_strong, weight


def thresholded_consistency(logits_weak: torch.Tensor, logits_strong: torch.Tensor, weigh, index: torch.Tensor | None = None,
                            temperature: float = 1.0, align=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unlabeled half of ``pseudo_label_consistency``, for algorithms with their own forward pass (SLA-FixMatch).

    Hard pseudo-labels from the weak view's logits (optionally aligned), without gradient; each
    sample weighted by ``weigh(probs, index)``; the weighted cross-entropy of the strong view
    against them, normalised by the whole unlabeled batch. Returns (loss, pseudo-labels, weights).
    """
    with torch.no_grad():
        probs = torch.softmax(logits_weak.detach().float() / temperature, dim=-1)
        if align is not None:
            probs = align(probs)
        pseudo = probs.argmax(dim=-1)
        weight = weigh(probs, index)
    unsup = masked_mean(cross_entropy(logits_strong, pseudo, reduction="none"), weight)
    return unsup, pseudo, weight


# ---- similarity classifiers and heads an algorithm owns (SimMatch, ShrinkMatch, DASO)


def similarity_logits(z: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(z_b, k_j) / T for every sample b and key j: the (B, N) logits of a similarity classifier.

    Keys are labeled embeddings (SimMatch's memory) or class prototypes (DASO); both are normalised here.
    """
    return F.normalize(z.float(), dim=-1) @ F.normalize(keys.float(), dim=-1).t() / temperature


def feature_dim_of(model: nn.Module, algorithm: str, fix: str = "use a built-in model") -> int:
    """The model's feature width, for a head the algorithm owns; a model that does not say is refused in one sentence.

    ``fix`` ends that sentence, for an algorithm whose head is optional (ReMixMatch: set rotation=False).
    """
    feature_dim = getattr(model, "feature_dim", None)
    if not isinstance(feature_dim, int):
        raise FewLabelsError(f"{algorithm}: needs a model with a feature_dim (its own head sits on the model's features); "
                             f"{fix}.")
    return feature_dim
