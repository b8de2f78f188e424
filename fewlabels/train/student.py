"""The network a run trains: built from the registry, normalized on the pool, started from ``--init``, laid out.

The Trainer asks for it once; the order of the steps is the order the weights' random numbers are drawn in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewlabels import models
from fewlabels.data import Dataset
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import global_batchnorm
from fewlabels.train.init import apply_init, read_init
from fewlabels.train.preparation import normalization_stats


def build_student(cfg: TrainConfig, train: Dataset, device: torch.device, world: int, channels_last: bool,
                  restoring: bool) -> tuple[nn.Module, torch.Tensor, dict[str, Any] | None]:
    """The model on ``device``, its input std (for the feature views) and the ``--init`` record (None without one).

    ``restoring``: a checkpoint will replace the weights (resume), so ``--init`` is not read again.
    """
    model = models.get(cfg.model, train.sample_shape, train.num_classes)
    mean, std = normalization_stats(train.x)
    model.set_normalization(mean, std)
    init_record = None
    if cfg.init is not None and not restoring:  # the encoder brings the normalization it was trained with
        state, init_record = read_init(cfg.init)
        init_record["tensors"] = apply_init(model, state, cfg.init_head, cfg.init, cfg.model)
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
