"""Batched augmentation with per-sample randomness; imports nothing else of fewlabels."""

from __future__ import annotations

from fewlabels.augment.features import FeatureNoise, make_feature_views
from fewlabels.augment.groups import GROUPS, TransformGroup, get_group
from fewlabels.augment.images import check_images, to_unit_float
from fewlabels.augment.policies import Identity, ResizedCrop, Strong, Weak
from fewlabels.augment.randaugment import ALL_OPS, COLOR_OPS, GEOMETRIC_OPS, RandAugment


def make_views(hflip: bool = True, symmetries: list[tuple[int, bool]] | None = None) -> dict:
    """The named views the algorithms ask for, for image data; ``symmetries``: see ``Weak``."""
    return {"none": Identity(), "weak": Weak(hflip=hflip, symmetries=symmetries),
            "strong": Strong(hflip=hflip, symmetries=symmetries), "crop": ResizedCrop(hflip=hflip, symmetries=symmetries)}


__all__ = [
    "ALL_OPS", "COLOR_OPS", "GEOMETRIC_OPS", "GROUPS",
    "FeatureNoise", "Identity", "RandAugment", "ResizedCrop", "Strong", "TransformGroup", "Weak",
    "check_images", "get_group", "make_feature_views", "make_views", "to_unit_float",
]
