"""``--whiten-init``: the first convolution starts as PCA-whitening filters of image patches from the training pool.

The idea is from the fast-training literature (David Page's ResNet-9, Keller Jordan's airbench, hlb-CIFAR10): a
first layer that decorrelates its k x k x C input patches gives the layers above well-conditioned features from
step one. This is our own code: patches are drawn from the pool the run trains on (labeled + unlabeled, never the
validation or test images), after the model's own input normalization, since that is what the layer sees.

With eigen-decomposition ``cov = V diag(lam) V^T`` of the d = C*k*k patch covariance, filter i is
``v_i / sqrt(lam_i + eps)`` (largest variance first): the filters' outputs have covariance ``diag(lam / (lam + eps))``,
the identity up to the directions whose variance is not far above ``eps`` (noise, which ``eps`` keeps from being
blown up). A layer with fewer than d filters takes the leading ones; one with more takes the negated filters next
(both signs pass the activation above), and any beyond 2d keep their default initialisation. A layer with a bias
gets ``-filter . mean_patch``, so its outputs are centred too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fewlabels.errors import FewLabelsError

EPS = 1e-2  # on normalized inputs (unit variance per channel): a direction is amplified at most 10x
PATCHES = 50_000  # patches drawn: the covariance of at most 4 x 4 x 3 = 48 dimensions is settled long before


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution of the backbone (the one the images meet), refused in one sentence where there is none."""
    conv = next((m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise FewLabelsError("whiten_init initialises the first convolution of an image model, and this model has none; "
                             "leave --whiten-init out.")
    return conv


def sample_patches(images: torch.Tensor, pool: np.ndarray | torch.Tensor, k: int, count: int, seed: int) -> torch.Tensor:
    """``count`` k x k patches (count, C, k, k) at random images of ``pool`` and random positions, as float64 on 0..1.

    A generator of its own draws them, so the run's other random numbers are those of a run without whitening.
    """
    g = torch.Generator().manual_seed(int(seed))
    pool = torch.as_tensor(pool, dtype=torch.int64)
    c, h, w = images.shape[1:]
    which = pool[torch.randint(len(pool), (count,), generator=g)]
    top = torch.randint(h - k + 1, (count,), generator=g)
    left = torch.randint(w - k + 1, (count,), generator=g)
    offsets = torch.arange(k)
    patches = images[which[:, None, None, None], torch.arange(c)[None, :, None, None],
                     (top[:, None] + offsets)[:, None, :, None], (left[:, None] + offsets)[:, None, None, :]]
    patches = patches.to(torch.float64)
    return patches / 255.0 if images.dtype == torch.uint8 else patches


def whitening_filters(patches: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA-whitening filters of ``patches`` (n, ...): (d, d) rows largest variance first, the eigenvalues, the mean.

    Row i is ``v_i / sqrt(lam_i + eps)``; float64 throughout, so the covariance they leave is exact to rounding.
    """
    x = patches.reshape(len(patches), -1).to(torch.float64)
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / max(1, len(x) - 1)
    lam, vectors = torch.linalg.eigh(cov)  # ascending
    lam, vectors = lam.flip(0).clamp(min=0.0), vectors.flip(1)
    return vectors.T / torch.sqrt(lam + eps)[:, None], lam, mean


def whiten_first_conv(model: nn.Module, images: torch.Tensor, pool: np.ndarray | torch.Tensor, seed: int,
                      eps: float = EPS, count: int = PATCHES) -> dict[str, Any]:
    """Set the first convolution of ``model`` (its input normalization already set) from patches of ``images[pool]``.

    Returns what was done: how many filters were set from the whitening, of how many the layer has.
    """
    conv = first_conv(model)
    k = conv.kernel_size
    if k[0] != k[1] or conv.groups != 1 or conv.dilation != (1, 1) or images.dim() != 4 or \
            conv.in_channels != images.shape[1] or min(images.shape[2:]) < k[0]:
        raise FewLabelsError(f"whiten_init needs a plain square first convolution that fits the images, and this "
                             f"model's is {conv}; leave --whiten-init out.")
    patches = sample_patches(images, pool, k[0], count, seed)
    mean = model.mean.to(torch.float64).reshape(1, -1, 1, 1)  # the model's normalization: the layer sees its output
    std = model.std.to(torch.float64).reshape(1, -1, 1, 1)
    filters, _, patch_mean = whitening_filters((patches - mean) / std, eps)
    both = torch.cat([filters, -filters])
    n = min(conv.out_channels, len(both))
    with torch.no_grad():
        conv.weight[:n].copy_(both[:n].reshape(n, *conv.weight.shape[1:]).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias[:n].copy_((-(both[:n] @ patch_mean)).to(conv.bias.dtype))
    return {"filters": n, "out_channels": conv.out_channels, "patches": count, "eps": eps}
