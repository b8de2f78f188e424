"""Backbones + a linear head, built by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.models.cnn import SmallCNN
from fewlabels.models.common import Classifier
from fewlabels.models.convnet import ConvNet
from fewlabels.models.mlp import MLP
from fewlabels.models.wrn import WideResNet

_BACKBONES: dict[str, tuple[Callable[[tuple[int, ...]], nn.Module], str]] = {
    "cnn-small": (lambda shape: SmallCNN(shape[0], width=8), "the same CNN at widths 8-16-32 (9k parameters): a "
                  "distillation student at about a quarter of cnn's multiply-adds"),
    "cnn": (lambda shape: SmallCNN(shape[0], width=16), "small 5-conv CNN, widths 16-32-64 (35k parameters, fast on CPU)"),
    "cnn-wide": (lambda shape: SmallCNN(shape[0], width=32), "the same CNN at widths 32-64-128 (140k parameters)"),
    "convnet": (lambda shape: ConvNet(*shape), "the textbook convnet: 4 conv + BN, dropout, dense 64 (267k parameters at "
                "28x28; one input size)"),
    "wrn-28-2": (lambda shape: WideResNet(shape[0], 28, 2), "WideResNet-28-2 (1.5M parameters)"),
    "mlp": (lambda shape: MLP(int(shape[0])), "2-layer MLP for feature vectors"),
}
IMAGE_MODELS = ("cnn-small", "cnn", "cnn-wide", "convnet", "wrn-28-2")
MIN_IMAGE_SIDE = {"cnn-small": 4, "cnn": 4, "cnn-wide": 4, "convnet": 4, "wrn-28-2": 4}  # two 2x downsamplings need at least 4 pixels


def names() -> list[str]:
    return list(_BACKBONES)


def describe() -> dict[str, str]:
    return {k: v[1] for k, v in _BACKBONES.items()}


def check_name(name: str) -> None:
    if name not in _BACKBONES:
        close = difflib.get_close_matches(name, list(_BACKBONES), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise FewLabelsError(f"Unknown model '{name}': {hint}choose one of {', '.join(_BACKBONES)}.")


def default_for(sample_shape: tuple[int, ...], on_gpu: bool) -> str:
    """The model a run gets when none is named: the data's kind decides, and a GPU affords a wider net for photos.

    Feature vectors take the MLP; images the small CNN on a CPU (fast), WideResNet-28-2 on a GPU
    for images of 32 pixels or more (the standard semi-supervised backbone at CIFAR's size).
    """
    if len(sample_shape) != 3:
        return "mlp"
    return "wrn-28-2" if on_gpu and min(sample_shape[1:]) >= 32 else "cnn"


def check(name: str, sample_shape: tuple[int, ...]) -> None:
    """Refuse an unknown model, or one that does not take this kind of sample."""
    check_name(name)
    is_image = len(sample_shape) == 3
    if is_image != (name in IMAGE_MODELS):
        kind = "images" if is_image else "feature vectors"
        fits = [n for n in _BACKBONES if (n in IMAGE_MODELS) == is_image]
        raise FewLabelsError(f"Model '{name}' does not take {kind}; use {' or '.join(fits)}.")
    if is_image and min(sample_shape[1:]) < MIN_IMAGE_SIDE[name]:
        side = MIN_IMAGE_SIDE[name]
        raise FewLabelsError(f"Model '{name}' needs images of at least {side}x{side} pixels, got "
                             f"{sample_shape[1]}x{sample_shape[2]}, which is too small; resize the images.")


def get(name: str, sample_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """A classifier for samples of ``sample_shape`` ((C, H, W) images or (D,) features)."""
    check(name, sample_shape)
    is_image = len(sample_shape) == 3
    backbone = _BACKBONES[name][0](sample_shape)
    norm_shape = (1, sample_shape[0], 1, 1) if is_image else (1, sample_shape[0])
    return Classifier(backbone, backbone.out_dim, num_classes, norm_shape)
