"""What every model shares: input normalization inside the model, logits + features out."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """backbone -> features -> linear head; ``forward`` returns ``(logits, features)``.

    Normalization statistics live in buffers, so a saved model takes raw images
    (uint8 0..255 or float 0..1) and needs nothing else to predict.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, norm_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        # (1, C, 1, 1) for images: per-channel; (1, D) for features: per-feature
        self.register_buffer("mean", torch.zeros(norm_shape))
        self.register_buffer("std", torch.ones(norm_shape))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean.reshape(self.mean.shape))
        self.std.copy_(std.reshape(self.std.shape).clamp(min=1e-6))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return self.head(feats), feats


def set_batchnorm_momentum(module: nn.Module, momentum: float) -> int:
    """Give every BatchNorm in ``module`` this running-statistics momentum (PyTorch's: the new batch's weight).

    Models set their own (WideResNet 0.001, the others PyTorch's 0.1); a run's ``bn_momentum`` overrides them all.
    Returns how many layers were set.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.momentum = momentum
    return len(layers)
