"""Mixing and sharpening of samples and targets (MixMatch, ReMixMatch, UDA)."""

from __future__ import annotations

import torch


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T), renormalised: lower entropy for T < 1 (MixMatch, UDA)."""
    q = p.pow(1.0 / temperature)
    return q / q.sum(dim=-1, keepdim=True)


def beta_draws(alpha: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """Beta(alpha, alpha) from two Gamma draws made with an explicit generator (reproducible, resumable)."""
    g1 = torch._standard_gamma(torch.full((n,), float(alpha), device=gen.device), generator=gen)
    g2 = torch._standard_gamma(torch.full((n,), float(alpha), device=gen.device), generator=gen)
    return g1 / (g1 + g2)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator | None = None,
          keep_first: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convex combinations of the batch with a shuffled copy of itself.

    lambda ~ Beta(alpha, alpha), one per sample; with ``keep_first`` lambda = max(lambda, 1 - lambda)
    so each mixed sample stays closer to its own origin (MixMatch). Returns mixed x, y and lambda.
    """
    n = len(x)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((n,)).to(x.device) if gen is None else beta_draws(alpha, n, gen).to(x.device)
    if keep_first:
        lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(n, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device)
    lx = lam.view(-1, *([1] * (x.dim() - 1)))
    ly = lam.view(-1, 1)
    return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm], lam
