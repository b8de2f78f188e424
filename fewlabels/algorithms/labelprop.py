"""Label propagation feeding the network: the default for feature vectors (tables, embeddings).

"Label Propagation for Deep Semi-supervised Learning" (Iscen, Tolias, Avrithis, Chum, CVPR 2019):
spread the few labels over a nearest-neighbour graph of all samples, then train the network on
the labeled samples plus the propagated ("pseudo") labels of the unlabeled ones, each weighted
by the inverse frequency of its pseudo-class so no class drowns the others. The graph and its
solution (``fewlabels.algorithms.components.graph``) are built once, at setup, on the standardized inputs,
where feature vectors (an embedding, a table) already carry the neighbourhood structure (images
join the graph as their pixels); the network then turns the transductive labels into a classifier
for new samples.

    loss = H(y, p(x_weak)) + lambda_u * mean_b[ w_b * H(yhat_b, p(u_weak_b)) ]

Paper: kNN k=50 on the network's features, re-propagated each epoch, entropy weights. Here, chosen
by accuracy on the unlabeled pools' hidden labels of digits, two moons and breast cancer (never
their test sets): k=10, one propagation on the inputs, the harmonic (clamped) solution rather than
the paper's spreading with restart, and no entropy weights (the harmonic solution's scores are flat
far from the labels, so entropy weights silenced the samples that most needed a label: 92.6% vs
96.4% on the moons pool with one label per class).
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.graph import harmonic_labels, knn_graph, standardized
from fewlabels.algorithms.components.options import COUNT, LAMBDA_U, Option
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import cross_entropy


@register
class LabelProp(Algorithm):
    name = "labelprop"
    views = {"labeled": ["weak"], "unlabeled": ["weak"]}
    requires = ("pool",)
    options = {
        "lambda_u": LAMBDA_U,
        "neighbors": Option(COUNT, "neighbours of each sample in the kNN graph"),
        "max_nodes": Option(COUNT, "most samples in the graph (the rest of the pool is left out)"),
    }

    def __init__(self, lambda_u: float = 1.0, neighbors: int = 10, max_nodes: int = 20000) -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.neighbors = neighbors
        self.max_nodes = max_nodes

    def setup(self, ctx: SetupContext) -> None:
        labeled_x, unlabeled_x = ctx.pool
        n_l, n_u = len(labeled_x), len(unlabeled_x)
        # a seeded, evenly spread subset of a large pool joins the graph (its cost grows with the square of its size)
        chosen = torch.arange(n_u) if n_u <= self.max_nodes else torch.linspace(0, n_u - 1, self.max_nodes).long()
        x = torch.cat([labeled_x, unlabeled_x[chosen]]).reshape(n_l + len(chosen), -1).float()  # images: their pixels
        std = x.std(0)
        graph = knn_graph(standardized(x, x.mean(0), torch.where(std > 0, std, torch.inf)), self.neighbors)
        scores = harmonic_labels(graph, torch.arange(n_l), ctx.labeled_y.cpu(), ctx.num_classes)[n_l:]
        reached = scores.max(1).values > 1.0 / ctx.num_classes + 1e-6  # a node with no path to a label has no pseudo-label
        chosen = chosen[reached]
        pseudo = torch.zeros(n_u, dtype=torch.int64)
        pseudo[chosen] = scores[reached].argmax(1)
        counts = torch.bincount(pseudo[chosen], minlength=ctx.num_classes).float()
        weight = torch.zeros(n_u)
        weight[chosen] = (len(chosen) / ctx.num_classes) / counts.clamp(min=1)[pseudo[chosen]]  # inverse class frequency
        self.register_buffer("pseudo", pseudo)
        self.register_buffer("weight", weight)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u, index = batch["unlabeled"]["weak"], batch["unlabeled"]["index"]
        (logits_l, logits_u), _ = joint_forward(model, x_l, u)
        target, weight = self.pseudo[index], self.weight[index]
        sup = self.supervised_ce(logits_l, y_l)
        unsup = (weight * cross_entropy(logits_u, target, reduction="none")).mean()
        return step_result(sup + self.lambda_u * unsup, sup=sup, unsup=unsup, mask_rate=(weight > 0).float().mean(),
                           pseudo_labels=target, mask=weight > 0)
