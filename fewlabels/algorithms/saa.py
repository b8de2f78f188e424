"""SAA ("Enhancing Sample Utilization through Sample Adaptive Augmentation in Semi-Supervised
Learning", Gui, Zhao, Qi, Zhou, Wang and Shi, ICCV 2023), on FixMatch or FlexMatch.

Some unlabeled samples are classified right and confidently even when strongly augmented: their
loss stays near zero and they teach nothing ("naive" samples). SAA finds them from their loss
history and augments them more diversely:

    l_i = H(argmax q_i, p(u_strong_i))          strong-view loss of every sample in the batch (unmasked, no gradient)
    H_i <- m H_i + (1 - m) l_i                  its history (sample selection module)
    once per pass over the unlabeled pool:   naive_i = H_i < Otsu threshold of {H_j}
    naive samples (sample augmentation module): the strong view's top or left half (p = 1/2 each)
        is replaced by the same half of a second, independent strong augmentation
    loss = the base algorithm's loss on these views (FixMatch: fixed tau; FlexMatch: curriculum thresholds)

Defaults as in the paper and the authors' code: tau = 0.95, lambda_u = 1, m = 0.001 (their code
keeps 0.1% of the old value, so the history is in effect each sample's latest loss), Otsu's
threshold over all samples' histories, halves spliced between two RandAugment draws. Here the
second strong view is RandAugment + Cutout applied to the sample's weak view (the same recipe as
the loop's strong view, drawn with the step's generator, so a resumed run splices identically),
and only for the naive rows. Selection starts once every sample has a history, i.e. after the
first pass over the pool (their code starts after a fixed number of epochs). Images only.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import (
    Algorithm,
    Batch,
    SetupContext,
    register,
)
from fewlabels.algorithms.components.consistency import pseudo_label_consistency
from fewlabels.algorithms.components.options import LAMBDA_U, MOMENTUM, THRESHOLD, Option, choice
from fewlabels.algorithms.components.parts import mean_by_index
from fewlabels.algorithms.components.thresholds import CurriculumThreshold, FixedThreshold
from fewlabels.augment import RandAugment
from fewlabels.collectives import all_gather_cat
from fewlabels.errors import FewLabelsError
from fewlabels.losses import cross_entropy


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """The histogram threshold that maximises the between-class variance (Otsu, 1979); values below it form the low class."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo  # one value: nothing lies below it
    hist = torch.histc(values.double(), bins, lo, hi)
    centers = lo + (torch.arange(bins, dtype=torch.float64, device=values.device) + 0.5) * (hi - lo) / bins
    w0 = hist.cumsum(0)[:-1]  # count at or below each candidate cut
    w1 = hist.sum() - w0
    s0 = (hist * centers).cumsum(0)[:-1]
    m0, m1 = s0 / w0.clamp(min=1), ((hist * centers).sum() - s0) / w1.clamp(min=1)
    cut = int((w0 * w1 * (m0 - m1) ** 2).argmax())
    return lo + (cut + 1) * (hi - lo) / bins  # the upper edge of the low class's last bin: exactly its values lie below


def splice_halves(x: torch.Tensor, other: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image with its top half (or, with probability 1/2, its left half) taken from ``other``."""
    _, _, h, w = x.shape
    top = (torch.rand(len(x), generator=gen, device=gen.device) < 0.5).to(x.device).view(-1, 1, 1, 1)
    rows = (torch.arange(h, device=x.device) < h // 2).view(1, 1, h, 1)
    cols = (torch.arange(w, device=x.device) < w // 2).view(1, 1, 1, w)
    return torch.where(torch.where(top, rows, cols), other, x)


@register
class SAA(Algorithm):
    name = "saa"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    options = {
        "base": Option(choice(("fixmatch", "flexmatch")), "the algorithm whose loss SAA augments"),
        "threshold": THRESHOLD,
        "lambda_u": LAMBDA_U,
        "momentum": Option(MOMENTUM, "momentum of each sample's loss history"),
    }

    def __init__(self, base: str = "fixmatch", threshold: float = 0.95, lambda_u: float = 1.0, momentum: float = 0.001) -> None:
        super().__init__()
        self.base, self.threshold, self.lambda_u, self.momentum = base, threshold, lambda_u, momentum
        self.weigh: FixedThreshold | CurriculumThreshold = FixedThreshold(threshold)
        self.augment = RandAugment()
        self.register_buffer("history", torch.zeros(0))  # H_i, NaN until sample i is first seen
        self.register_buffer("naive", torch.zeros(0, dtype=torch.bool))
        self.seen = 0  # samples processed since the last selection (extra state)

    def check_data(self, sample_shape: tuple[int, ...], num_classes: int, hflip: bool = False) -> None:
        if len(sample_shape) != 3:
            raise FewLabelsError("saa: its augmentation splices image halves, but the data are feature vectors; use fixmatch.")

    def setup(self, ctx: SetupContext) -> None:
        if self.base == "flexmatch":
            self.weigh = CurriculumThreshold(self.threshold, ctx.num_unlabeled, ctx.num_classes)
        self.history = torch.full((ctx.num_unlabeled,), float("nan"))
        self.naive = torch.zeros(ctx.num_unlabeled, dtype=torch.bool)
        self.seen = 0

    def get_extra_state(self) -> dict[str, int]:
        return {"seen": self.seen}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.seen = int(state["seen"])

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        unl = batch["unlabeled"]
        index = unl["index"]
        naive = self.naive[index.to(self.naive.device)].to(index.device)
        strong = unl["strong"]
        if bool(naive.any()):
            rows = naive.nonzero().squeeze(1)
            second = self.augment(unl["weak"][rows], batch["generator"])
            strong = strong.clone()
            strong[rows] = splice_halves(strong[rows], second.to(strong.dtype), batch["generator"])
        out, logits_strong, _ = pseudo_label_consistency(model, {**batch, "unlabeled": {**unl, "strong": strong}},
                                                         self.weigh, self.lambda_u)
        self.record(index, cross_entropy(logits_strong.detach().float(), out["pseudo_labels"], reduction="none"))
        out["naive_rate"] = naive.float().mean()  # a diagnostic beside the shared step's result
        return out

    @torch.no_grad()
    def record(self, index: torch.Tensor, loss: torch.Tensor) -> None:
        """Update the histories (gathered from every process); after each full pass, select the naive samples anew."""
        here = self.history.device
        index, loss = all_gather_cat(index).to(here), all_gather_cat(loss).to(here)
        old = self.history[index]
        rows, updated = mean_by_index(index, torch.where(old.isnan(), loss, self.momentum * old + (1 - self.momentum) * loss))
        self.history[rows] = updated  # a sample twice in the batch: the mean of its copies' updates
        self.seen += len(index)
        if self.seen >= len(self.history):
            self.seen -= len(self.history)
            if not bool(self.history.isnan().any()):  # every sample has a history
                self.naive = self.history < otsu_threshold(self.history)
