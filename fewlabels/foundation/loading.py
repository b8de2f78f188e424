"""Loading a foundation encoder: a local ``save_pretrained`` folder or a Hugging Face hub id, its vision tower and
its own image processor, refused in one sentence when it cannot serve as "images in, embeddings out".

Nothing is fetched silently: unless the user opted in with ``HF_HUB_OFFLINE=0``, the load runs with
``HF_HUB_OFFLINE=1`` and ``local_files_only``, so a hub id works only when it is already in the local cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewlabels.errors import FewLabelsError

INSTALL = "pip install 'fewlabels[foundation]'"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9_.-]{1,96})?$")
EXAMPLES = "ViT, DINOv2, CLIP's or SigLIP's vision model"


@dataclass
class Encoder:
    """A frozen vision encoder and its image processor; ``key`` is a content hash of its weights and processor,
    so embeddings cached under it are found again only for the very same encoder."""

    name: str
    model: nn.Module
    processor: Any
    key: str


def downloads_allowed() -> bool:
    """Whether the user opted in to hub downloads, by setting HF_HUB_OFFLINE=0 (or false/no/off) themselves."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("0", "false", "no", "off")


@contextlib.contextmanager
def _offline_unless_opted_in() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the load (restored after), unless the user opted in to downloads."""
    if downloads_allowed():
        yield
        return
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


@contextlib.contextmanager
def _quiet_transformers(transformers) -> Iterator[None]:
    """transformers' own warnings and loading bars off during the load: the command's output stays its own."""
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


def _import_transformers():
    try:
        import transformers
    except ImportError as exc:
        raise FewLabelsError(f"a foundation encoder needs the transformers package, which is not installed: {INSTALL}.") from exc
    return transformers


def _reason(exc: BaseException) -> str:
    """The first line of a library's error, short enough for the one-sentence message."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), type(exc).__name__)
    return (line[:160] + "...") if len(line) > 160 else line.rstrip(".")


def _source(name_or_path: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local folder), refusing what is neither a folder nor an id."""
    text = str(name_or_path)
    if not text.strip():
        raise FewLabelsError(f"--encoder is empty; name a model folder written by save_pretrained or a Hugging Face "
                             f"model id ({EXAMPLES}).")
    path = Path(text).expanduser()
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # a symlink loop, a name too long
        raise FewLabelsError(f"--encoder {text} cannot be read ({exc.strerror or exc}).") from exc
    if is_dir:
        if not (path / "config.json").is_file():
            raise FewLabelsError(f"{text} is not a model folder (it has no config.json); pass a folder written by "
                                 f"save_pretrained, holding the model and its image processor.")
        return str(path), True
    if exists:
        raise FewLabelsError(f"{text} is a file, not a model folder; pass a folder written by save_pretrained.")
    if not HUB_ID.match(text) or ".." in text:
        raise FewLabelsError(f"{text} is neither a model folder nor a Hugging Face model id; pass a folder written by "
                             "save_pretrained or an id such as facebook/dinov2-small.")
    return text, False


def _not_found_offline(name: str, exc: BaseException) -> FewLabelsError:
    if downloads_allowed():
        return FewLabelsError(f"could not load {name} from the Hugging Face hub ({_reason(exc)}); pass a local folder "
                              "written by save_pretrained instead.")
    return FewLabelsError(f"{name} is not a folder here nor in the local Hugging Face cache, and fewlabels downloads "
                          "nothing unless asked (HF_HUB_OFFLINE=1): pass a local folder written by save_pretrained, "
                          "or set HF_HUB_OFFLINE=0 to let it download the model once.")


def _vision_tower(model: nn.Module, name: str) -> nn.Module:
    """The part of ``model`` that takes images: the model itself, or the vision tower of CLIP, SigLIP and the like."""
    tower = getattr(model, "vision_model", None)
    if isinstance(tower, nn.Module) and "input_ids" in inspect.signature(model.forward).parameters:
        model = tower  # a two-tower (image-text) model: only its image side
    if "pixel_values" not in inspect.signature(model.forward).parameters:
        raise FewLabelsError(f"{name} is not an image model (a {type(model).__name__} takes no pixel_values); pass an "
                             f"image encoder ({EXAMPLES}).")
    return model


def weights_key(model: nn.Module, processor: Any) -> str:
    """A content hash of the weights and the processor's settings: what decides the embeddings."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    to_json = getattr(processor, "to_json_string", None)
    h.update((to_json() if callable(to_json) else repr(processor)).encode())
    return h.hexdigest()[:24]


def load_encoder(name_or_path: str) -> Encoder:
    """The encoder NAME_OR_PATH names (a local folder, or a hub id already in the local cache unless downloads are
    allowed), in eval mode, with its own image processor; refused in one sentence when it cannot embed images."""
    source, local = _source(name_or_path)
    transformers = _import_transformers()
    with _offline_unless_opted_in(), _quiet_transformers(transformers):
        offline = not downloads_allowed()
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=offline)
        except Exception as exc:  # noqa: BLE001 - the user's folder or id: any failure to read it is theirs to fix
            if not local:
                raise _not_found_offline(source, exc) from exc
            raise FewLabelsError(f"{source} is not a model folder transformers can read ({_reason(exc)}).") from exc
        try:
            model = transformers.AutoModel.from_pretrained(source, config=config, local_files_only=offline,
                                                           use_kernels=False)
        except Exception as exc:  # noqa: BLE001
            if not local:
                raise _not_found_offline(source, exc) from exc
            raise FewLabelsError(f"{source} holds no model transformers can load ({_reason(exc)}).") from exc
        model = _vision_tower(model, source)
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(source, local_files_only=offline)
        except Exception as exc:  # noqa: BLE001
            raise FewLabelsError(f"{source} has no image processor (preprocessor_config.json); save the model's image "
                                 "processor beside it (processor.save_pretrained(folder)).") from exc
    model.eval().requires_grad_(False)
    return Encoder(name=source, model=model, processor=processor, key=weights_key(model, processor))
