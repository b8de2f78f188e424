"""Logit adjustment ("Long-tail learning via logit adjustment", Menon, Jayasumana, Rawat, Jain,
Veit and Kumar, ICLR 2021) for the labeled loss of the supervised baseline and of FixMatch.

    sup = H(y, softmax(logits(x) + la_tau * log pi))         pi = the labeled class frequencies

Training against logits shifted up for frequent classes makes the unshifted logits, which
are what the model outputs at test time, estimate the class-balanced posterior: rare classes
are predicted as often as their evidence warrants. Paper default: tau = 1 (``la_tau``;
0 gives back plain cross-entropy).

Two algorithms, the existing ones with only their labeled term adjusted:
- ``supervised-la``: the supervised baseline.
- ``fixmatch-la``: FixMatch, every option the same; pseudo-labels, the threshold and the
  unlabeled term are unchanged (the weak-view predictions are the model's own, unadjusted).

The prior pi comes from the labeled set's labels, the setup context's ``labeled_y`` (the
labels as training sees them, noisy ones included: the frequencies a user could compute), and
is a buffer (``log_prior``). A class without labels gets a floor of 1e-6 instead of 0, so its
log stays finite.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.consistency import joint_forward, thresholded_consistency
from fewlabels.algorithms.components.options import NON_NEGATIVE, Option
from fewlabels.algorithms.components.result import step_result
from fewlabels.algorithms.fixmatch import FixMatch
from fewlabels.losses import logit_adjusted_cross_entropy

PRIOR_FLOOR = 1e-6


def log_class_prior(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """log of the class frequencies of ``labels`` (-1 rows ignored), each at least PRIOR_FLOOR."""
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    counts = torch.bincount(labels[labels >= 0], minlength=num_classes).double()
    return (counts / counts.sum().clamp(min=1.0)).clamp(min=PRIOR_FLOOR).log().float()


LA_TAU = Option(NON_NEGATIVE, "scale of the log class prior added to the labeled logits")


class _LogitAdjusted:
    """The shared part: the option, the prior from ``setup``, and the adjusted labeled loss."""

    name: str
    la_tau: float
    pool_calibration = False  # the prior shifts the logits: the pool temperature was not checked with it
    log_prior: torch.Tensor

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)  # type: ignore[misc]
        self.register_buffer("log_prior", log_class_prior(ctx.labeled_y, ctx.num_classes))  # type: ignore[attr-defined]

    def prior(self, device: torch.device) -> torch.Tensor:
        """log pi on ``device``."""
        return self.log_prior.to(device)


@register
class SupervisedLA(_LogitAdjusted, Algorithm):
    name = "supervised-la"
    views = {"labeled": ["weak"], "unlabeled": []}
    options = {"la_tau": LA_TAU}

    def __init__(self, la_tau: float = 1.0) -> None:
        super().__init__()
        self.la_tau = la_tau

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        logits, _ = model(batch["labeled"]["weak"])
        sup = logit_adjusted_cross_entropy(logits, batch["labeled"]["y"], self.prior(logits.device), tau=self.la_tau,
                                           label_smoothing=self.label_smoothing)
        return step_result(sup, sup=sup)


@register
class FixMatchLA(_LogitAdjusted, FixMatch):
    name = "fixmatch-la"
    options = {**FixMatch.options, "la_tau": LA_TAU}

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, temperature: float = 1.0,
                 distribution_alignment: bool = False, da_momentum: float = 0.99, la_tau: float = 1.0) -> None:
        super().__init__(threshold, lambda_u, temperature, distribution_alignment, da_momentum)
        self.la_tau = la_tau

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """FixMatch's step with only the labeled cross-entropy adjusted: pseudo-labels come from the raw logits."""
        x_l, y_l, unl = batch["labeled"]["weak"], batch["labeled"]["y"], batch["unlabeled"]
        (logits_l, logits_weak, logits_strong), _ = joint_forward(model, x_l, unl["weak"], unl["strong"])
        sup = logit_adjusted_cross_entropy(logits_l, y_l, self.prior(logits_l.device), tau=self.la_tau,
                                           label_smoothing=self.label_smoothing)
        align = self.alignment if self.distribution_alignment else None
        unsup, pseudo, weight = thresholded_consistency(logits_weak, logits_strong, self.weigh, unl.get("index"),
                                                        self.temperature, align)
        return step_result(sup + self.lambda_u * unsup, sup=sup, unsup=unsup, mask_rate=weight.float().mean(),
                           pseudo_labels=pseudo, mask=weight >= 0.5)
