"""UDA ("Unsupervised Data Augmentation for Consistency Training", Xie, Dai, Hovy, Luong and Le).

    loss = H(y, p(x_weak))  +  lambda_u * mean_b[ 1(max p_b >= beta) * KL( Sharpen(p_b, T) || p(u_strong_b) ) ]
    with p_b = p(u_weak_b), a constant target; Sharpen(p, T) = p^(1/T) / sum p^(1/T) = softmax(logits / T).

Soft targets from the weakly augmented view, sharpened and kept only where the model is
confident, teach the strongly augmented view. The mask uses the unsharpened confidence,
as in the paper's code, and the mean runs over the whole unlabeled batch (FixMatch's
normalisation, shared by the family here).

Paper defaults: T = 0.4, beta = 0.8, lambda_u = 1. The paper's targets come from the clean
image; by default here from the weak view (flip and crop), as in USB's benchmarks, and
``target_view="none"`` gives the paper's choice. The paper's optional training signal
annealing (TSA) is left out.
"""

from __future__ import annotations

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, register
from fewlabels.algorithms.components.consistency import joint_forward
from fewlabels.algorithms.components.mixing import sharpen
from fewlabels.algorithms.components.options import LAMBDA_U, POSITIVE, UNIT, Option, choice
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import confident_pseudo_labels, cross_entropy, masked_mean


@register
class UDA(Algorithm):
    name = "uda"
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}
    pool_calibration = True  # the pool temperature was checked on it (components/base.py)
    options = {
        "lambda_u": LAMBDA_U,
        "temperature": Option(POSITIVE, "sharpening temperature of the soft targets"),
        "threshold": Option(UNIT, "confidence a target needs to count"),
        "target_view": Option(choice(("weak", "none"), "'weak' or 'none' (the clean view)"), "view the targets come from"),
    }

    def __init__(self, lambda_u: float = 1.0, temperature: float = 0.4, threshold: float = 0.8, target_view: str = "weak") -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.temperature = temperature
        self.threshold = threshold
        self.target_view = target_view
        self.views = {"labeled": ["weak"], "unlabeled": [target_view, "strong"]}

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        u_target, u_strong = batch["unlabeled"][self.target_view], batch["unlabeled"]["strong"]
        (logits_l, logits_target, logits_strong), _ = joint_forward(model, x_l, u_target, u_strong)
        with torch.no_grad():
            probs = torch.softmax(logits_target.detach().float(), dim=-1)
            pseudo, _, mask = confident_pseudo_labels(probs, self.threshold)
            target = sharpen(probs, self.temperature)
            target_neg_entropy = torch.special.xlogy(target, target).sum(-1)  # sum q log q, 0 log 0 = 0
        # KL(q || p) = H(q, p) - H(q); the constant H(q) only makes the value read as a divergence
        kl = cross_entropy(logits_strong.float(), target, reduction="none") + target_neg_entropy
        sup = self.supervised_ce(logits_l, y_l)
        unsup = masked_mean(kl, mask)
        return step_result(sup + self.lambda_u * unsup, sup=sup, unsup=unsup, mask_rate=mask.float().mean(),
                           pseudo_labels=pseudo, mask=mask)
