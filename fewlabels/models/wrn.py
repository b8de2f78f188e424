"""WideResNet-28-2, the backbone of the FixMatch family's CIFAR results."""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.001  # as in the FixMatch reference setup
LEAKY = 0.1


class _Basic(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.act = nn.LeakyReLU(LEAKY, inplace=True)
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.activate_before_residual = activate_before_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        residual = pre if (self.activate_before_residual or self.shortcut is not None) else x
        out = self.conv2(self.act(self.bn2(self.conv1(pre))))
        return out + (self.shortcut(residual) if self.shortcut is not None else residual)


class WideResNet(nn.Module):
    def __init__(self, in_channels: int = 3, depth: int = 28, widen: int = 2) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        for stage, stride in enumerate((1, 2, 2)):
            c_in, c_out = widths[stage], widths[stage + 1]
            for i in range(n):
                layers.append(_Basic(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, stage == 0 and i == 0))
        self.body = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(widths[3], momentum=BN_MOMENTUM)
        self.act = nn.LeakyReLU(LEAKY, inplace=True)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.body(x))))
