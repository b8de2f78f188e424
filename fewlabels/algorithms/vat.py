"""VAT ("Virtual Adversarial Training: A Regularization Method for Supervised and
Semi-Supervised Learning", Miyato, Maeda, Koyama and Ishii).

    loss = H(y, p(x_l))  +  lambda_u * mean_x[ KL( p(x) || p(x + r_adv) ) ]  (+ w_ent * mean_x[ H(p(x)) ])
    r_adv = eps * d / ||d||,  d = grad_r KL( p(x) || p(x + r) ) at r = xi * (random unit vector)

The local distributional smoothness term needs no labels: r_adv is the direction in which
the model's own prediction changes fastest (one power iteration), and the model is asked
not to change along it. p(x) is a constant target. As in the paper, x runs over the labeled
and the unlabeled samples of the batch; it also makes the probing passes see the same batch
as the clean pass, so BatchNorm's batch statistics do not masquerade as the adversarial
signal. ``entmin`` adds the paper's conditional-entropy term (VAT+EntMin).

Paper (CIFAR-10, ZCA-whitened inputs): eps = 6.0, xi = 1e-6, lambda_u = 1, one power
iteration, entropy weight 1. Our models take [0, 1] inputs and normalise inside; CIFAR-10's
pixel std on [0, 1] is ~0.25, so the paper's radius is ~6.0 * 0.25 = 1.5 there. ``eps`` and
``xi`` are stated for a 3x32x32 input and scaled by sqrt(D / 3072) for inputs of D values,
so every input size gets the same perturbation per value (eps: RMS ~0.027, about 7/255;
0.76 for 28x28 inputs, 0.22 for 8x8 digits). For feature vectors the rule applies in the
data's own units. xi = 1e-3, not 1e-6: in float32 on [0, 1] inputs a probe of 1e-6 drowns
in rounding. Measured on 8x8 digits with a partly trained CNN, the direction found with
xi = 1e-6 had mean cosine 0.10 with the float64 power-iteration direction; 1e-5 gave 0.86,
and 1e-4 (what xi = 1e-3 becomes at 8x8 after scaling) 0.999.
The entropy weight of ``entmin`` is 0.06, USB's value, rather than the paper's 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, register
from fewlabels.algorithms.components.consistency import bn_stats_frozen, vat_perturbation
from fewlabels.algorithms.components.options import COUNT, FLAG, LAMBDA_U, NON_NEGATIVE, POSITIVE, Option
from fewlabels.algorithms.components.result import step_result
from fewlabels.losses import entropy, kl_divergence

REFERENCE_SIZE = 3 * 32 * 32  # eps and xi are stated for a CIFAR-sized input


@register
class VAT(Algorithm):
    name = "vat"
    views = {"labeled": ["weak"], "unlabeled": ["weak"]}
    options = {
        "lambda_u": LAMBDA_U,
        "eps": Option(POSITIVE, "radius of the adversarial perturbation (for a 3x32x32 input, scaled to the input's size)"),
        "xi": Option(POSITIVE, "size of the probe of the power iteration (scaled as eps)"),
        "power_iterations": Option(COUNT, "power iterations that find the adversarial direction"),
        "entmin": Option(FLAG, "add conditional entropy minimization (VAT+EntMin)"),
        "entmin_weight": Option(NON_NEGATIVE, "weight of the entropy term"),
    }

    def __init__(self, lambda_u: float = 1.0, eps: float = 1.5, xi: float = 1e-3, power_iterations: int = 1,
                 entmin: bool = False, entmin_weight: float = 0.06) -> None:
        super().__init__()
        self.lambda_u = lambda_u
        self.eps = eps
        self.xi = xi
        self.power_iterations = power_iterations
        self.entmin = entmin
        self.entmin_weight = entmin_weight

    @staticmethod
    def size_factor(x: torch.Tensor) -> float:
        """sqrt(D / 3072): eps and xi give the same perturbation per value as on a 3x32x32 input."""
        return math.sqrt(x[0].numel() / REFERENCE_SIZE)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x_l, y_l = batch["labeled"]["weak"], batch["labeled"]["y"]
        x = torch.cat([x_l, batch["unlabeled"]["weak"]])
        logits, _ = model(x)
        sup = self.supervised_ce(logits[: len(x_l)], y_l)
        k = self.size_factor(x)
        r_adv = vat_perturbation(model, x, logits, self.xi * k, self.eps * k, self.power_iterations, batch["generator"])
        with bn_stats_frozen(model):  # the adversarial inputs should not shift the running statistics
            adv_logits, _ = model(x + r_adv)
        lds = kl_divergence(logits.detach().float(), adv_logits.float()).mean()
        ent = entropy(logits.float()).mean()
        total = sup + self.lambda_u * lds
        if self.entmin:
            total = total + self.entmin_weight * ent
        return step_result(total, sup=sup, unsup=lds, entropy=ent)
