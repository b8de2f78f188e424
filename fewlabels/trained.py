"""The trained model a run gives: ``Run`` predicts, evaluates and saves itself; ``load`` reads a model file or a run folder.

A model from the API, the CLI or the scikit-learn estimator is the same kind of object; ``fewlabels.api``
(the face) re-exports both.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fewlabels.data.arrays import as_numpy, features_to_float, images_to_uint8_nchw, labels_to_int64
from fewlabels.data.resize import resize_images
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate import predict_logits, summarize
from fewlabels.storage import RunFolder, build_model, ema_weights, folder_of, read_checkpoint, resolve_run
from fewlabels.train import TrainConfig
from fewlabels.utils.io import atomic_torch_save
from fewlabels.version import __version__

MODEL_FORMAT = 1  # the layout of a file written by Run.save
PREDICT_BATCH = 1024
# ITU-R BT.601 luma, the usual RGB -> gray weights.
_LUMA = (0.299, 0.587, 0.114)


class Run:
    """A trained classifier: the final EMA model, its classes, the run's results and configuration.

    ``predict``/``predict_proba`` take arrays in any layout ``fit`` accepts; images of another
    size are resized (bilinear) and gray/RGB are converted, so a model keeps working on
    slightly different inputs without the caller re-implementing the preprocessing.
    """

    def __init__(self, model: nn.Module, classes: Sequence[str], results: dict, config: TrainConfig,
                 sample_shape: Sequence[int]) -> None:
        self.classes = list(classes)
        self.results = results
        self.config = config
        self.sample_shape = tuple(int(s) for s in sample_shape)
        # Same memory format as in training: conv kernels then sum in the same order, so a saved and
        # re-loaded model (and the loop's own evaluation) give bit-identical outputs.
        self._channels_last = self.is_image and bool(config.channels_last)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()

    def __repr__(self) -> str:
        acc = self.results.get("test_accuracy")
        tail = f", test_accuracy={acc:.4f}" if isinstance(acc, float) else ""
        return (f"Run(model={self.config.model!r}, algorithm={self.config.algorithm!r}, classes={len(self.classes)}, "
                f"sample_shape={self.sample_shape}{tail})")

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3

    # ---- inputs

    def as_input(self, X: Any) -> torch.Tensor:
        """uint8 (N, C, H, W) images or float32 (N, D) features, checked against what the model takes."""
        x = as_numpy(X, "X")
        if self.is_image:
            c, h, w = self.sample_shape
            if x.ndim == 2:
                raise FewLabelsError(f"X has shape {x.shape} but this model takes images of {c}x{h}x{w}; "
                                     "reshape flat rows to (N, H, W) or (N, H, W, C) first.")
            if x.ndim in (3, 4) and len(x) == 0:
                return torch.empty((0, c, h, w), dtype=torch.uint8)
            xt = images_to_uint8_nchw(x)
            if xt.shape[1] != c and {int(xt.shape[1]), c} != {1, 3}:
                raise FewLabelsError(f"X has {xt.shape[1]} channels but the model takes {c}; give gray or RGB images.")
            return xt
        (d,) = self.sample_shape
        if x.ndim != 2 or x.shape[1] != d:
            hint = " (for one sample, use X.reshape(1, -1))" if x.ndim == 1 and len(x) == d else ""
            raise FewLabelsError(f"X has shape {x.shape} but this model takes feature vectors of shape (N, {d}){hint}.")
        return features_to_float(x)

    def _conform(self, xb: torch.Tensor) -> torch.Tensor:
        """Convert a batch of images to the training channel count and size; features pass through."""
        if not self.is_image:
            return xb
        c, h, w = self.sample_shape
        if xb.shape[1] == c and tuple(xb.shape[2:]) == (h, w):
            return xb
        if tuple(xb.shape[2:]) != (h, w):
            xb = resize_images(xb, (h, w))  # as training resized arrays (files: PIL, as training read them)
            if xb.shape[1] == c:
                return xb
        x = xb.float()
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = (x * torch.tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return (x / 255.0).clamp(0.0, 1.0)  # the model takes float images on 0..1

    @torch.no_grad()
    def logits(self, X: Any) -> torch.Tensor:
        """Raw class scores (N, K), computed in batches."""
        x = self.as_input(X)
        device = next(self.model.parameters()).device
        out = [predict_logits(self.model, self._conform(x[i : i + PREDICT_BATCH]), PREDICT_BATCH, device, self._channels_last)
               for i in range(0, len(x), PREDICT_BATCH)]
        return torch.cat(out) if out else torch.empty((0, len(self.classes)))

    # ---- outputs

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, K), columns in the order of ``classes``: as ``fewlabels predict`` and the exported
        model serve them (flip-averaged where the run's views flip, divided by the run's fitted temperature)."""
        from fewlabels.evaluate.tta import served

        return torch.softmax(served(self).logits(X).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Class indices (N,) into ``classes``, as ``fewlabels predict`` serves them."""
        from fewlabels.evaluate.tta import served

        return served(self).logits(X).argmax(1).numpy()

    def evaluate(self, X: Any, y: Any) -> dict:
        """Accuracy, per-class accuracy and the confusion matrix of the model on labeled data."""
        logits = self.logits(X)
        yt = labels_to_int64(y, len(logits), len(self.classes))
        if (yt < 0).any():
            raise FewLabelsError("y contains -1; evaluation needs a label for every sample.")
        return summarize(logits, yt, self.classes)

    # ---- files

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one file, atomically; ``fewlabels.load`` reads it back with ``weights_only=True``."""
        path = Path(path)
        if path.is_dir():
            raise FewLabelsError(f"{path} is a folder; give a file name such as {path / 'model.pt'}.")
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()}
        record = {
            "fewlabels_model": MODEL_FORMAT,
            "version": __version__,
            "model_name": self.config.model,
            "sample_shape": list(self.sample_shape),
            "classes": list(self.classes),
            "config": _plain(self.config.to_dict()),
            "results": _plain(self.results),
            "state_dict": state,
        }
        atomic_torch_save(path, record)


def _plain(obj: Any) -> Any:
    """Only JSON-like values survive ``torch.load(weights_only=True)``: turn NumPy scalars and the like into them."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from a saved dict, ignoring keys this version does not know (files outlive code)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in known})


def load(path: str | os.PathLike) -> Run:
    """Read a model written by ``Run.save``, or a run folder (or its ``last.pt``) written by the CLI.

    Run folders are read through ``RunFolder``, the one reader ``--resume`` uses too, so an
    edited config.yaml that no longer describes the checkpoint is refused here as there.
    """
    path = Path(path)
    if not path.exists():
        raise FewLabelsError(f"{path} does not exist; give a file written by Run.save() or a fewlabels run folder.")
    path = resolve_run(path)  # a pipeline folder stands for its final stage
    inside = folder_of(path)  # a checkpoint file of a run folder is checked against the folder's config.yaml too
    if path.is_dir() or inside is not None:
        folder = inside or RunFolder(path)
        if path.is_dir() and not folder.last.is_file() and not any(folder.path.glob("checkpoint-*.pt")):
            raise FewLabelsError(f"{path} is a folder without last.pt, so it is not a fewlabels run folder.")
        # the EMA model is the one the run reports
        config, classes, shape, state = folder.final_model(None if path.is_dir() else path)
        return _build_run(folder.source, config.get("model", ""), classes, shape, state, folder.results(), config)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FewLabelsError(f"{path} is not a fewlabels model: it cannot be read as a safe PyTorch file "
                             f"({type(exc).__name__}).") from None
    if not isinstance(obj, dict):
        raise FewLabelsError(f"{path} is not a fewlabels model: it holds a {type(obj).__name__}, not a model record.")
    if "fewlabels_model" in obj:
        if obj["fewlabels_model"] != MODEL_FORMAT:
            raise FewLabelsError(f"{path} was written by fewlabels {obj.get('version', '?')} in model format "
                                 f"{obj['fewlabels_model']}; this fewlabels {__version__} reads format {MODEL_FORMAT}.")
        missing = [k for k in ("config", "state_dict", "model_name", "classes", "sample_shape") if k not in obj]
        if missing or not isinstance(obj["config"], dict) or not isinstance(obj["state_dict"], dict) or \
                not isinstance(obj["classes"], (list, tuple)) or not isinstance(obj["sample_shape"], (list, tuple)) or \
                not all(isinstance(s, int) for s in obj["sample_shape"]):
            what = f"has no '{missing[0]}'" if missing else "has a model record with fields of the wrong types"
            raise FewLabelsError(f"{path} {what}; it is damaged or not a complete model file written by Run.save().")
        config, state, results, name = obj["config"], obj["state_dict"], obj.get("results", {}), obj["model_name"]
    elif "format" in obj and "ema" in obj:  # a checkpoint file outside its folder
        ckpt = read_checkpoint(path)
        config, state, results, name = ckpt["config"], ema_weights(ckpt), {}, ckpt["config"].get("model", "")
    else:
        raise FewLabelsError(f"{path} is a PyTorch file but not a fewlabels model (no model record or run checkpoint in it).")
    classes, shape = [str(c) for c in obj["classes"]], tuple(int(s) for s in obj["sample_shape"])
    return _build_run(path, name, classes, shape, state, results, config)


def _build_run(file: Path, name: str, classes: list[str], shape: tuple[int, ...], state: dict, results: dict,
               config: dict) -> Run:
    model = build_model(file, name, shape, len(classes), state)
    return Run(model, classes, results, _config_from_dict(config), shape)
