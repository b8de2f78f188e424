"""What the self-supervised methods share: two augmented views, a projection head, an online linear probe.

solo-learn's design: the model's own classifier head trains as a linear probe on *detached*
features of the labeled batch, so no label reaches the backbone (SupCon's labels aside, which
is its point), while test accuracy, kNN and the other monitors follow the representation as
it trains. One joint forward pass: BatchNorm sees the labeled and the unlabeled views together.

Views (option ``view``): ``strong``, the project's RandAugment + Cutout on a flip and crop, or
``crop``, SimCLR's random resized crop + flip + colour jitter (``augment.ResizedCrop``). On
feature vectors the views are the feature-noise views (Gaussian noise and feature dropout, the
only ones that exist for them), a much weaker pretext than image augmentation.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext
from fewlabels.algorithms.components.options import CLOSED_UNIT, COUNT, NON_NEGATIVE, Option, choice
from fewlabels.algorithms.components.result import step_result
from fewlabels.collectives import all_gather_with_grad
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.representation import representation_monitors
from fewlabels.models.heads import projection_mlp

VIEWS = ("strong", "crop")


class Pretraining(Algorithm):
    """A self-supervised method: ``pretext`` turns the two views' backbone features into named losses."""

    views: ClassVar[dict[str, list[str]]] = {"labeled": ["weak"], "unlabeled": ["strong", "strong#2"]}
    min_batch: ClassVar[int] = 2  # the smallest unlabeled batch the pretext loss is defined for
    labeled_pair: ClassVar[bool] = False  # whether labeled samples take the two views too (SupCon)
    options = {
        "proj_hidden": Option(COUNT, "width of the projection head's hidden layers"),
        "proj_dim": Option(COUNT, "size of the projected embeddings"),
        "probe_lr": Option(NON_NEGATIVE, "learning rate of the online linear probe (the model's own head)"),
        "view": Option(choice(VIEWS, "one of " + ", ".join(VIEWS)), "the two views: strong augmentation, or crop-and-jitter"),
    }

    def __init__(self, proj_hidden: int = 512, proj_dim: int = 128, probe_lr: float = 0.1, view: str = "strong") -> None:
        super().__init__()
        self.proj_hidden, self.proj_dim, self.probe_lr, self.view = proj_hidden, proj_dim, probe_lr, view
        self.pair = (view, f"{view}#2")
        self.views = {"labeled": ["weak", *(self.pair if self.labeled_pair else ())], "unlabeled": list(self.pair)}

    def check_data(self, sample_shape: tuple[int, ...], num_classes: int, hflip: bool = False) -> None:
        if self.view == "crop" and len(sample_shape) != 3:
            raise FewLabelsError(f"{self.name}: view 'crop' crops images, and this data is feature vectors; "
                                 "use view=strong (the feature-noise views).")

    def setup(self, ctx: SetupContext) -> None:
        head = getattr(ctx.model, "head", None)
        if not isinstance(head, nn.Linear) or not callable(getattr(ctx.model, "features", None)):
            raise FewLabelsError(f"{self.name}: needs a built-in model (a backbone with features and a linear head).")
        self.feature_dim = head.in_features
        self._probe = list(head.parameters())  # the model's own head: a plain list, so it is not registered twice
        self.projector = self.make_projector(self.feature_dim)

    def make_projector(self, feature_dim: int) -> nn.Module:
        """SimCLR's two-layer MLP with batch norm; methods that want another head override this."""
        return projection_mlp(feature_dim, self.proj_hidden, self.proj_dim, num_layers=2, batchnorm=True)

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": self._probe, "lr": self.probe_lr, "weight_decay": 0.0}]

    def monitors(self) -> list[Any]:
        return representation_monitors(self.view)

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        lab, unl = batch["labeled"], batch["unlabeled"]
        first, second = self.pair
        if len(unl[first]) < self.min_batch:
            raise FewLabelsError(f"{self.name}: needs an unlabeled batch of at least {self.min_batch}, got "
                                 f"{len(unl[first])}; raise --batch-size or --uratio.")
        n = len(lab["weak"]) if lab else 0
        parts = ([lab["weak"]] if n else []) + [unl[first], unl[second]]
        feats = model.features(torch.cat(parts))
        probe = self.supervised_ce(model.head(feats[:n].detach()), lab["y"]) if n else feats.new_zeros(())
        f1, f2 = feats[n:].chunk(2)
        terms = self.pretext(f1, f2, batch, step)
        loss = terms.pop("loss")
        return step_result(loss + probe, sup=probe, unsup=loss, **terms)

    def pretext(self, f1: torch.Tensor, f2: torch.Tensor, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def gather(z: torch.Tensor) -> torch.Tensor:
    """The global batch's rows (with gradient), so batch statistics and negatives are the global batch's."""
    return all_gather_with_grad(z)


class MomentumTarget(Pretraining):
    """A method with an EMA target encoder (BYOL, MoCo v3): a frozen copy of the model and projector.

    The target's momentum follows BYOL's cosine schedule from ``momentum`` to 1:
    tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.
    """

    options = {
        **Pretraining.options,
        "pred_hidden": Option(COUNT, "width of the predictor's hidden layer"),
        "momentum": Option(CLOSED_UNIT, "the target network's first momentum, raised to 1 on a cosine"),
    }

    def __init__(self, proj_hidden: int = 512, proj_dim: int = 128, probe_lr: float = 0.1, pred_hidden: int = 512,
                 momentum: float = 0.99, view: str = "strong") -> None:
        super().__init__(proj_hidden, proj_dim, probe_lr, view)
        self.pred_hidden, self.momentum = pred_hidden, momentum

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)
        self.predictor = projection_mlp(self.proj_dim, self.pred_hidden, self.proj_dim, num_layers=2, batchnorm=True)
        self.target_model = copy.deepcopy(ctx.model).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.total_steps = ctx.total_steps
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def current_momentum(self) -> float:
        k = int(self.updates)
        return 1 - (1 - self.momentum) * (math.cos(math.pi * k / max(1, self.total_steps)) + 1) / 2

    def target_embeddings(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The target network's projections of the two views, without gradient."""
        unl = batch["unlabeled"]
        with torch.no_grad():
            t = self.target_projector(self.target_model.features(torch.cat([unl[self.pair[0]], unl[self.pair[1]]])))
        return t.chunk(2)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        tau = self.current_momentum()
        for online, target in ((model, self.target_model), (self.projector, self.target_projector)):
            torch._foreach_lerp_(list(target.parameters()), [p.detach() for p in online.parameters()], 1.0 - tau)
            for b_target, b in zip(target.buffers(), online.buffers()):
                b_target.copy_(b)
        self.updates += 1
