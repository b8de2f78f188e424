"""Monitors of a representation, as it trains: kNN accuracy, alignment and uniformity, collapse.

All read the EMA model's backbone features (the representation the run hands on), L2-normalized.

- kNN: weighted cosine k-nearest-neighbours with the labeled set as memory and the test set as
  queries; each of the k neighbours votes exp(cos / T) for its class (k = 20, T = 0.07, the
  InstDisc / solo-learn setting). With few labels k is capped at the memory's size.
- alignment E ||f(x) - f(x+)||^2 over two views of the same test image (the method's own view), and uniformity
  log E exp(-2 ||f(x) - f(y)||^2) over pairs of test images ("Understanding Contrastive
  Representation Learning through Alignment and Uniformity on the Hypersphere"); lower is
  better for both. Computed on a fixed subset (the first ``subset`` test images, fixed views).
- collapse: the mean per-dimension std of the normalized embeddings, times sqrt(d), so a
  spread-out representation reads near 1 and a collapsed one (every input mapped to one
  point) reads 0. Below ``COLLAPSE_BELOW`` the run is called collapsed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fewlabels.evaluate.metrics import accuracy
from fewlabels.evaluate.monitors import EvalContext, Monitor

COLLAPSE_BELOW = 0.01


def knn_predict(memory: torch.Tensor, memory_y: torch.Tensor, queries: torch.Tensor, num_classes: int, k: int = 20,
                temperature: float = 0.07, chunk: int = 2048) -> torch.Tensor:
    """Weighted cosine kNN class predictions for ``queries`` (N, D) against ``memory`` (M, D)."""
    memory = F.normalize(memory.float(), dim=-1)
    k = min(k, len(memory))
    out = []
    for i in range(0, len(queries), chunk):
        q = F.normalize(queries[i:i + chunk].float(), dim=-1)
        sim, idx = (q @ memory.t()).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, memory_y[idx], (sim / temperature).exp())
        out.append(votes.argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    return float((a - b).pow(2).sum(-1).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    z = F.normalize(z.float(), dim=-1)
    return float(torch.pdist(z).pow(2).mul(-t).exp().mean().log())


def spread(z: torch.Tensor) -> float:
    """Mean per-dimension std of the normalized embeddings, times sqrt(d): ~1 spread out, 0 collapsed."""
    z = F.normalize(z.float(), dim=-1)
    return float(z.std(0, unbiased=False).mean() * math.sqrt(z.shape[1]))


class KNNAccuracy:
    def __init__(self, k: int = 20, temperature: float = 0.07) -> None:
        self.k, self.temperature = k, temperature

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.test_x is None or ctx.labeled_x is None or len(ctx.labeled_x) == 0:
            return {}
        memory = ctx.features(ctx.ema_model, "labeled")
        num_classes = int(max(ctx.labeled_y.max(), ctx.test_y.max())) + 1
        predicted = knn_predict(memory, ctx.labeled_y, ctx.features(ctx.ema_model, "test"), num_classes, self.k,
                                self.temperature)
        return {"knn_acc": accuracy(ctx.test_y, predicted)}


class AlignmentUniformity:
    """Alignment is measured under ``view``, the augmentation the representation was trained to be invariant to."""

    def __init__(self, subset: int = 1000, seed: int = 0, view: str = "strong") -> None:
        self.subset, self.seed, self.view = subset, seed, view

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.test_x is None:
            return {}
        figures = {"uniformity": uniformity(ctx.features(ctx.ema_model, "test")[: self.subset])}
        view = (ctx.views or {}).get(self.view)
        if view is not None:
            x = ctx.test_x[: self.subset]
            gen = torch.Generator().manual_seed(self.seed)
            _, a = ctx.predict(ctx.ema_model, view(x, gen))
            _, b = ctx.predict(ctx.ema_model, view(x, gen))
            figures["alignment"] = alignment(a, b)
        return figures


class Collapse:
    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.test_x is None:
            return {}
        return {"emb_spread": spread(ctx.features(ctx.ema_model, "test"))}


def representation_monitors(view: str = "strong") -> list[Monitor]:
    return [KNNAccuracy(), AlignmentUniformity(view=view), Collapse()]
