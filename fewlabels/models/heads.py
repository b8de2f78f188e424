"""Heads an algorithm puts on a model's features: a linear head and projection MLPs.

Each builder creates its layers in the order the layers run, so under a fixed seed the
weights are those of the same ``nn.Sequential`` written out by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def linear_head(in_dim: int, out_dim: int) -> nn.Linear:
    """A linear classifier on features (ReMixMatch's rotation head, SLA's joint head)."""
    return nn.Linear(in_dim, out_dim)


def projection_mlp(in_dim: int, hidden: int, out_dim: int, num_layers: int = 2, batchnorm: bool = False,
                   activation: Callable[[], nn.Module] = nn.ReLU, last_bn: bool = False) -> nn.Sequential:
    """``num_layers`` linear layers ``in_dim -> hidden -> ... -> out_dim``, each but the last followed by
    [BatchNorm1d] and ``activation()``; ``last_bn`` adds a BatchNorm1d (no affine) after the last one.

    SimMatch's projector is ``projection_mlp(d, d, 128)``; ShrinkMatch's auxiliary head
    ``projection_mlp(d, d // 4, K, num_layers=3, batchnorm=True, activation=lambda: nn.LeakyReLU(0.1))``.
    """
    if num_layers < 1:
        raise ValueError(f"projection_mlp needs at least one layer, got {num_layers}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(width, hidden))
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(activation())
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)
