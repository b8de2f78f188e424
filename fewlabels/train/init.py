"""Starting a run from another run's encoder (``--init``): the backbone, its input normalization, optionally the head.

The source is a run folder (its EMA model, read through ``RunFolder``), a model file written by
``Run.save``, a checkpoint file, or a plain ``state_dict`` of one of our models. Only tensors the
new model has are taken, and every one of them must be there with the same shape: the first
that is missing or differs is named in one sentence, so an encoder of another model or with
other input channels never loads half-way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.storage import RunFolder, ema_weights, folder_of, resolve_run

ENCODER_PREFIXES = ("backbone.", "mean", "std")  # the backbone and the input normalization it was trained with
OPTIONAL = ("mean", "std")


def read_init(source: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict an ``--init`` source holds, and its record (path, sha256 of the file read)."""
    path = Path(source)
    if not path.exists():
        raise FewLabelsError(f"--init {path} does not exist; give a run folder or a state_dict file of one of our models.")
    path = resolve_run(path)  # a pipeline folder: its final model
    file = path
    folder = RunFolder(path) if path.is_dir() else folder_of(path)  # a run's files are read through their folder
    if folder is not None:
        state = folder.final_model(None if path.is_dir() else path)[3]
        file = folder.source  # the file read (an intact checkpoint-<step>.pt when last.pt is damaged)
    else:
        try:
            obj = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise FewLabelsError(f"--init {file} cannot be read as a PyTorch state_dict ({type(exc).__name__}).") from None
        state = _state_of(obj, file)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return state, {"path": str(path), "sha256": digest}


def _state_of(obj: Any, file: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "fewlabels_model" in obj:  # Run.save
        obj = obj.get("state_dict")
    elif isinstance(obj, dict) and "format" in obj and "ema" in obj:  # a run's checkpoint file
        obj = ema_weights(obj)
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FewLabelsError(f"--init {file} is not a state_dict (a mapping of tensor names to tensors) of one of our models.")
    return obj


def apply_init(model: nn.Module, state: dict[str, torch.Tensor], with_head: bool, source: str, model_name: str) -> int:
    """Copy the encoder's tensors (and the head's with ``with_head``) into ``model``; returns how many were copied.

    A plain state_dict without the normalization buffers keeps the run's own normalization.
    """
    own = model.state_dict()
    wanted = [k for k in own if (k.startswith(ENCODER_PREFIXES) or (with_head and k.startswith("head.")))
              and not (k in OPTIONAL and k not in state)]
    for key in wanted:
        if key not in state:
            raise FewLabelsError(f"--init {source} has no '{key}': it was written for another model than "
                                 f"'{model_name}'; use the same --model.")
        if tuple(state[key].shape) != tuple(own[key].shape):
            what = ("classes; --init-head needs the same classes" if key.startswith("head.")
                    else "input channels" if key in ("mean", "std") else "model or input channels")
            raise FewLabelsError(f"--init {source}: '{key}' has shape {tuple(state[key].shape)} there but "
                                 f"{tuple(own[key].shape)} here (other {what}).")
    with torch.no_grad():
        for key in wanted:
            own[key].copy_(state[key])
    return len(wanted)
