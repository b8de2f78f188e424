"""ELR ("Early-Learning Regularization Prevents Memorization of Noisy Labels", Liu, Niles-Weed,
Razavian and Fernandez-Granda, NeurIPS 2020), on the labeled set.

    t_i <- beta t_i + (1 - beta) p_i                       per labeled sample i, no gradient; t starts at 0
    loss = mean_b H(y_b, p_b)  +  lambda * mean_b log(1 - <p_b, t_b>)

A network fits the clean labels before it memorises the wrong ones. t_i remembers its
early predictions for sample i; the regularizer's gradient pulls p_i toward t_i, which
cancels the pull of a wrong label before it is memorised.

Paper defaults for CIFAR-10: beta = 0.7, lambda = 3 (CIFAR-100: beta = 0.9, lambda = 7).
The targets are updated from the batch's own predictions before the regularizer is
computed, as in the paper's algorithm. They are kept per labeled sample, indexed by
``batch["labeled"]["index"]`` (positions in the labeled set), sized in ``setup`` from the
context's ``labeled_y``; an index beyond it grows the table to the largest index seen.
A sample the batch holds twice (small labeled sets repeat) gets the mean of its copies' updates.
With several processes every rank applies every rank's update, so the targets stay equal.
Only labeled data is used: this is a noisy-label method, not a semi-supervised one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.options import MOMENTUM, NON_NEGATIVE, Option
from fewlabels.algorithms.components.parts import fit_buffers_to, mean_by_index
from fewlabels.algorithms.components.result import step_result
from fewlabels.collectives import all_gather_cat
from fewlabels.errors import FewLabelsError
from fewlabels.losses import elr_regularizer


@register
class ELR(Algorithm):
    name = "elr"
    views = {"labeled": ["weak"], "unlabeled": []}
    options = {
        "beta": Option(MOMENTUM, "momentum of the per-sample target predictions"),
        "lambda_elr": Option(NON_NEGATIVE, "weight of the early-learning regularizer"),
    }

    def __init__(self, beta: float = 0.7, lambda_elr: float = 3.0) -> None:
        super().__init__()
        self.beta = beta
        self.lambda_elr = lambda_elr
        self.num_classes = 0
        # (num_labeled, K): running mean of each labeled sample's predictions
        self.register_buffer("targets", torch.zeros(0, 0))

    def setup(self, ctx: SetupContext) -> None:
        self.num_classes = ctx.num_classes
        self.targets = torch.zeros(0 if ctx.labeled_y is None else len(ctx.labeled_y), ctx.num_classes)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        targets = state_dict.get(prefix + "targets")
        if not isinstance(targets, torch.Tensor) or (len(self.targets) and targets.shape != self.targets.shape):
            shape = None if not isinstance(targets, torch.Tensor) else tuple(targets.shape)
            raise FewLabelsError(f"elr: the checkpoint's targets {shape} do not fit this run's {tuple(self.targets.shape)} "
                                 "labeled samples x classes; resume with the same data and labels.")
        fit_buffers_to(self, state_dict, prefix, ("targets",))  # a table that grew from nothing
        super()._load_from_state_dict(state_dict, prefix, *args)

    @torch.no_grad()
    def update_targets(self, index: torch.Tensor, probs: torch.Tensor) -> None:
        here = self.targets.device
        index, probs = all_gather_cat(index).to(here), all_gather_cat(probs.float()).to(here)
        if len(index) and int(index.max()) >= len(self.targets):  # not sized by setup: grow
            grown = torch.zeros(int(index.max()) + 1, self.targets.shape[1] or probs.shape[1], device=here)
            grown[: len(self.targets)] = self.targets
            self.targets = grown
        rows, updated = mean_by_index(index, self.beta * self.targets[index] + (1.0 - self.beta) * probs)
        self.targets[rows] = updated

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        lab = batch["labeled"]
        if "index" not in lab:
            raise RuntimeError("elr needs batch['labeled']['index'], the samples' positions in the labeled set")
        logits, _ = model(lab["weak"])
        probs = torch.softmax(logits.float(), dim=-1)
        self.update_targets(lab["index"], probs.detach())
        sup = self.supervised_ce(logits, lab["y"])
        reg = elr_regularizer(probs, self.targets[lab["index"].to(self.targets.device)].to(probs.device))
        return step_result(sup + self.lambda_elr * reg, sup=sup, elr=reg)
