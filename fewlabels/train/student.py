"""The network a run trains: built from the registry, normalized on the pool, started from ``--init``, laid out.

The Trainer asks for it once; the order of the steps is the order the weights' random numbers are drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fewlabels import models
from fewlabels.data import Dataset
from fewlabels.errors import FewLabelsError
from fewlabels.models.common import set_batchnorm_momentum
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import global_batchnorm
from fewlabels.train.init import apply_init, read_init
from fewlabels.train.preparation import normalization_stats
from fewlabels.train.progress import say
from fewlabels.train.whitening import whiten_first_conv


def build_student(cfg: TrainConfig, train: Dataset, device: torch.device, world: int, channels_last: bool,
                  restoring: bool, pool: Sequence[np.ndarray] = ()) -> tuple[nn.Module, torch.Tensor, dict[str, Any] | None]:
    """The model on ``device``, its input std (for the feature views) and the ``--init`` record (None without one).

    ``restoring``: a checkpoint will replace the weights (resume), so ``--init`` is not read again (nor whitening
    done). ``pool``: index arrays of the training images ``--whiten-init`` may draw patches from (the labeled and unlabeled
    sets; none given: all).
    """
    model = models.get(cfg.model, train.sample_shape, train.num_classes)
    if cfg.whiten_init and not train.is_image:
        raise FewLabelsError(f"--whiten-init initialises an image model's first convolution, but {train.name} holds "
                             "feature vectors; leave it out.")
    if cfg.bn_momentum is not None:
        set_batchnorm_momentum(model, cfg.bn_momentum)
    mean, std = normalization_stats(train.x)
    model.set_normalization(mean, std)
    init_record = None
    if cfg.init is not None and not restoring:  # the encoder brings the normalization it was trained with
        state, init_record = read_init(cfg.init)
        init_record["tensors"] = apply_init(model, state, cfg.init_head, cfg.init, cfg.model)
        if cfg.whiten_init:
            say(f"note: --whiten-init is not applied: the first layer is the --init encoder's ({cfg.init}).", None)
    elif cfg.whiten_init and not restoring:
        whiten_first_conv(model, train.x, np.concatenate(pool) if pool else np.arange(len(train.x)), cfg.seed)
    if cfg.freeze_backbone:
        model.backbone.requires_grad_(False)
    model.to(device)
    if world > 1:  # batch statistics over the global batch, as one process with W times the batch sees them
        model = global_batchnorm(model)
    return in_layout(model, channels_last), std, init_record


def in_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """The memory layout batches arrive in (channels-last for images): a network in another one runs ~2x slower."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def backbone_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The backbone at ``backbone_lr_scale`` times the learning rate (weight decay as the model's own groups)."""
    if cfg.backbone_lr_scale == 1.0:
        return []
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    lr = cfg.lr * cfg.backbone_lr_scale
    return [{"params": [p for p in params if p.dim() > 1], "lr": lr, "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "lr": lr * cfg.bn_bias_lr_scale, "weight_decay": 0.0}]
