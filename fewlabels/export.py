"""Export a trained model for serving without fewlabels: TorchScript (always) or ONNX (with the onnx package).

The exported module takes a float batch (images (N, C, H, W) on 0..1, or features (N, D)) and
returns logits (N, K). Normalization is inside the model; the TorchScript module also resizes
images of another size to the training size, as training resized them (ONNX takes the training
size only); gray/RGB conversion is the caller's. The class names
travel with the file: TorchScript as the extra file ``fewlabels.json``, ONNX as metadata.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from fewlabels.trained import Run

FORMATS = {"torchscript": ".ts", "onnx": ".onnx"}
META_FILE = "fewlabels.json"


class LogitsOnly(nn.Module):
    """Our models return (logits, features); a served model should return only what callers use."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


class AcceptUint8(nn.Module):
    """Scripted shell around the traced net: uint8 images (0..255) are scaled to 0..1, as ``Run`` does, and images
    of another size are resized to the training size as training resized arrays (``data.resize.resize_images``)."""

    def __init__(self, net: nn.Module, height: int, width: int) -> None:
        super().__init__()
        self.net = net
        self.height = height
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float()
            if x.shape[-2] != self.height or x.shape[-1] != self.width:
                x = F.interpolate(x, size=[self.height, self.width], mode="bilinear", align_corners=False, antialias=True)
                x = x.round().clamp(0.0, 255.0)
            x = x / 255.0
        elif x.shape[-2] != self.height or x.shape[-1] != self.width:
            x = F.interpolate(x, size=[self.height, self.width], mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)


def metadata(run: Run) -> dict:
    """What a server needs besides the weights: class names in logit order, and the input the module takes."""
    from fewlabels.evaluate.tta import recorded

    kind = "images, float32 on 0..1 (uint8 0..255 also accepted by TorchScript)" if run.is_image else "features, float32"
    return {"classes": list(run.classes), "input_shape": ["N", *run.sample_shape], "input": kind, "output": "logits (N, K)",
            "model": run.config.model, "algorithm": run.config.algorithm, "test_accuracy": run.results.get("test_accuracy"),
            "tta": recorded(run.config) if run.is_image else "none", "temperature": run.results.get("temperature") or 1.0}


def _plain_model(run: Run) -> nn.Module:
    """A CPU copy in the default memory format, in eval mode: the run's own model is left as it was."""
    model = copy.deepcopy(run.model).cpu().eval()
    if run.is_image:
        model = model.to(memory_format=torch.contiguous_format)
    from fewlabels.evaluate.tta import served_module

    return served_module(LogitsOnly(model), run).eval()  # the run's flip TTA and temperature, as predict applies them


def _example(run: Run) -> torch.Tensor:
    return torch.rand((2, *run.sample_shape), generator=torch.Generator().manual_seed(0))


def to_torchscript(run: Run) -> bytes:
    """Trace the net (fixed-shape convolutions trace exactly), script the uint8 shell around it."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export, still supported
        traced = torch.jit.trace(_plain_model(run), _example(run))
        module = torch.jit.script(AcceptUint8(traced, *run.sample_shape[1:])) if run.is_image else traced
        buf = io.BytesIO()
        torch.jit.save(module, buf, _extra_files={META_FILE: json.dumps(metadata(run))})
    return buf.getvalue()


def require_onnx():
    """The onnx module, or the one-line fix when it is absent (checked before any work)."""
    try:
        import onnx
    except ImportError:
        raise FewLabelsError("ONNX export needs the onnx package, which is not installed: pip install onnx "
                             "(or use --format torchscript).") from None
    return onnx


def to_onnx(run: Run) -> bytes:
    """ONNX with a dynamic batch axis; needs the onnx package, which fewlabels does not install."""
    onnx = require_onnx()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_plain_model(run), (_example(run),), buf, dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_FILE, json.dumps(metadata(run))
    return proto.SerializeToString()


def default_path(run_dir: str | os.PathLike, fmt: str) -> Path:
    run_dir = Path(run_dir)
    base = run_dir / "model" if run_dir.is_dir() else run_dir.with_suffix("")
    return base.with_suffix(FORMATS[fmt])


def export(run: Run, path: str | os.PathLike, fmt: str = "torchscript") -> Path:
    """Write ``run``'s EMA model to ``path`` in ``fmt``, atomically; returns the path."""
    if fmt not in FORMATS:
        raise FewLabelsError(f"Unknown export format '{fmt}'; use one of {', '.join(FORMATS)}.")
    path = Path(path)
    if path.is_dir():
        raise FewLabelsError(f"{path} is a folder; give a file name such as {path / ('model' + FORMATS[fmt])}.")
    payload = to_torchscript(run) if fmt == "torchscript" else to_onnx(run)
    atomic_write_bytes(path, payload)
    return path
