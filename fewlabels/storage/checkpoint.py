"""The checkpoint format: what a checkpoint must hold, the random-number state in loadable types, the safe reader,
and the weights it gives (as one of our models).

Format 2 (fewlabels 0.2+): an algorithm's state is its ``nn.Module`` state dict (heads,
buffers, and ``get_extra_state``). Format 1 checkpoints hold the same model and EMA
weights, so they still evaluate, predict and export; they resume only when the
algorithm kept no state of its own (FixMatch, supervised ...), since the layout of
that state changed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.version import __version__

CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
CHECKPOINT_KEYS = ("format", "config", "classes", "sample_shape", "step", "model", "ema", "optimizer", "scheduler",
                   "algorithm", "streams", "rng", "rows", "tally", "timing")


def rng_state() -> dict[str, Any]:
    """Every global generator's state, in types ``torch.load(weights_only=True)`` accepts."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint (a file, or a run folder's last.pt) safely, or explain why not."""
    path = Path(path)
    file = path / "last.pt" if path.is_dir() else path
    if not file.is_file():
        raise FewLabelsError(f"{path} holds no checkpoint (last.pt); it is not a fewlabels run folder, "
                             "or the run stopped before its first checkpoint.")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FewLabelsError(f"{file} cannot be read as a fewlabels checkpoint ({type(exc).__name__}); "
                             "it is corrupt or was written by another program.") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise FewLabelsError(f"{file} is not a fewlabels checkpoint.")
    if ckpt["format"] not in READABLE_FORMATS:
        raise FewLabelsError(f"{file} was written by fewlabels {ckpt.get('version', '?')} in checkpoint format "
                             f"{ckpt['format']}; this fewlabels {__version__} reads formats "
                             f"{', '.join(map(str, READABLE_FORMATS))}.")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing or not isinstance(ckpt["config"], dict):
        what = f"has no '{missing[0]}'" if missing else "has a malformed config"
        raise FewLabelsError(f"{file} {what}; it is damaged or not a complete fewlabels checkpoint.")
    return ckpt


def check_resumable(ckpt: dict, file: Path) -> None:
    """Format 1 resumes only where the algorithm kept no state (its layout changed in format 2)."""
    if ckpt["format"] != CHECKPOINT_FORMAT and ckpt["algorithm"]:
        raise FewLabelsError(f"{file} was written by fewlabels {ckpt.get('version', '?')} (checkpoint format "
                             f"{ckpt['format']}), whose {ckpt['config'].get('algorithm')} state this fewlabels "
                             f"{__version__} cannot resume; evaluate, predict and export still read it, or start a new run.")


def ema_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The EMA model's weights (the model a run reports) from a checkpoint of any readable format."""
    ema = ckpt["ema"]
    if not isinstance(ema, dict) or not isinstance(ema.get("module"), dict):
        raise FewLabelsError("the checkpoint's EMA record is damaged; it is not a complete fewlabels checkpoint.")
    return ema["module"]


def build_model(source: Path, name: str, shape: tuple[int, ...], num_classes: int, state: dict[str, torch.Tensor]) -> nn.Module:
    """One of our models by name, with ``state`` loaded; a state that does not fit is one sentence naming ``source``."""
    from fewlabels import models  # lazily: storage sits below the models, and reading a record needs none

    model = models.get(name, shape, num_classes)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FewLabelsError(f"{source}: the saved weights do not fit model '{name}' ({first[:160]}).") from None
    return model
