"""A multilayer perceptron for feature vectors (N, D)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    def __init__(self, in_features: int, hidden: int = 256, depth: int = 2) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            d = hidden
        super().__init__(*layers)
        self.out_dim = d
