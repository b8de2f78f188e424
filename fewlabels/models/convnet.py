"""The textbook Fashion-MNIST convnet: 4 conv + BN, two max-pools, dropout, a dense layer of 64.

The plain baseline of the Keras-style tutorials (about 267k parameters at 28x28), kept as a row of
``bench/ceiling.py`` so the recipe of the small CNN is read against a network people know. Its
dense layer sees the flattened map, so it is built for one input size.
"""

from __future__ import annotations

from torch import nn


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(c_out)]


class ConvNet(nn.Sequential):
    """32-32 | pool, dropout 0.25 | 64-64 | pool, dropout 0.25 | flatten, dense 64, dropout 0.5."""

    def __init__(self, in_channels: int, height: int, width: int) -> None:
        super().__init__(
            *_conv(in_channels, 32), *_conv(32, 32), nn.MaxPool2d(2), nn.Dropout(0.25),
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(64 * (height // 4) * (width // 4), 64), nn.ReLU(inplace=True), nn.Dropout(0.5),
        )
        self.out_dim = 64
