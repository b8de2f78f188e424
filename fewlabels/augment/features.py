"""Feature-space views for (N, D) vectors: Gaussian noise and feature dropout."""

from __future__ import annotations

import torch


class FeatureNoise:
    """``x + noise * scale * N(0, 1)``, then each feature zeroed with probability ``dropout``.

    ``scale`` is the per-feature spread of the data, so the noise is relative to it.
    """

    def __init__(self, scale: torch.Tensor, noise: float = 0.1, dropout: float = 0.0) -> None:
        if noise < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"noise must be >= 0 and dropout in [0, 1), got {noise}, {dropout}")
        self.scale = scale
        self.noise = noise
        self.dropout = dropout

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if x.dim() != 2 or len(x) == 0:
            raise ValueError(f"feature views need a non-empty (N, D) batch, got shape {tuple(x.shape)}")
        x = x.float()
        if self.noise > 0:
            eps = torch.randn(x.shape, generator=gen, device=gen.device).to(x.device)
            x = x + self.noise * self.scale.to(x.device) * eps
        if self.dropout > 0:
            keep = torch.rand(x.shape, generator=gen, device=gen.device).to(x.device) >= self.dropout
            x = x * keep
        return x


def make_feature_views(scale: torch.Tensor) -> dict:
    return {
        "none": FeatureNoise(scale, 0.0, 0.0),
        "weak": FeatureNoise(scale, 0.05, 0.0),
        "strong": FeatureNoise(scale, 0.2, 0.2),
    }
