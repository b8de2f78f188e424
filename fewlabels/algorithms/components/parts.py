"""Small parts algorithms share: per-sample tables, similarity classifiers, the feature width of a model."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.losses import at_least_fp32


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


def similarity_logits(z: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(z_b, k_j) / T for every sample b and key j: the (B, N) logits of a similarity classifier.

    Keys are labeled embeddings (SimMatch's memory) or class prototypes (DASO); both are normalised here.
    """
    return F.normalize(at_least_fp32(z), dim=-1) @ F.normalize(at_least_fp32(keys), dim=-1).t() / temperature


def feature_dim_of(model: nn.Module, algorithm: str, fix: str = "use a built-in model") -> int:
    """The model's feature width, for a head the algorithm owns; a model that does not say is refused in one sentence.

    ``fix`` ends that sentence, for an algorithm whose head is optional (ReMixMatch: set rotation=False).
    """
    feature_dim = getattr(model, "feature_dim", None)
    if not isinstance(feature_dim, int):
        raise FewLabelsError(f"{algorithm}: needs a model with a feature_dim (its own head sits on the model's features); "
                             f"{fix}.")
    return feature_dim


def fit_buffers_to(module: nn.Module, state_dict: dict[str, Any], prefix: str, names: tuple[str, ...]) -> None:
    """Give each named buffer the shape the incoming state has for it (tables that grow while training).

    Called from ``_load_from_state_dict`` before PyTorch copies the values in, so a table that grew
    (or was allocated at the first batch) loads into a freshly set-up module.
    """
    for name in names:
        incoming = state_dict.get(prefix + name)
        mine = getattr(module, name)
        if isinstance(incoming, torch.Tensor) and incoming.shape != mine.shape:
            setattr(module, name, torch.zeros(incoming.shape, dtype=mine.dtype, device=mine.device))
