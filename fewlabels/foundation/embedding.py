"""Images in, embeddings out: a foundation encoder run over uint8 images (N, C, H, W) in batches, through its own
image processor, with a progress bar and a time estimate, and cached on disk.

The cache key is a content hash of the images and of the encoder (weights and processor settings), so a second
call on the same images costs a hash and a file read, and any change to either computes afresh. The cache lives
under ``$FEWLABELS_CACHE/embeddings`` (default ``~/.cache/fewlabels``), beside the symmetry analysis' cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from fewlabels.data.dataset import DataSource
from fewlabels.errors import FewLabelsError
from fewlabels.foundation.loading import Encoder
from fewlabels.utils.durations import LONG_S, duration_text

FORMAT = 1  # bump when what is cached changes meaning


def cache_dir() -> Path:
    return Path(os.environ.get("FEWLABELS_CACHE", Path.home() / ".cache" / "fewlabels")) / "embeddings"


def cache_key(encoder: Encoder, x: torch.Tensor) -> str:
    """A content hash of the images (shape and bytes) and the encoder's own key."""
    h = hashlib.sha256(f"embeddings-v{FORMAT}-{encoder.key}-{tuple(x.shape)}-{x.dtype}".encode())
    h.update(np.ascontiguousarray(x.cpu().numpy()).tobytes())
    return h.hexdigest()[:32]


def _as_rgb_images(batch: torch.Tensor) -> list:
    """PIL RGB images of a uint8 batch (N, C, H, W): grayscale becomes RGB as transformers' ``convert_rgb`` does it
    (PIL's L -> RGB), so every processor sees the three channels its normalization expects."""
    from PIL import Image

    if batch.dtype != torch.uint8:  # float images in 0-1
        batch = (batch.float() * 255).round().clamp(0, 255).to(torch.uint8)
    arrays = batch.permute(0, 2, 3, 1).cpu().numpy()
    if arrays.shape[-1] == 1:
        return [Image.fromarray(a[..., 0], mode="L").convert("RGB") for a in arrays]
    return [Image.fromarray(np.ascontiguousarray(a), mode="RGB") for a in arrays]


def pooled(output) -> torch.Tensor:
    """One vector per image: the model's pooled output where it has one, else the first (CLS) token of the last
    hidden state, or its spatial mean for convolutional encoders."""
    pool = getattr(output, "pooler_output", None)
    if pool is not None:
        return pool.flatten(1)
    hidden = output.last_hidden_state
    return hidden[:, 0] if hidden.dim() == 3 else hidden.flatten(2).mean(-1)


def _processed(encoder: Encoder, batch: torch.Tensor) -> torch.Tensor:
    """The processor's pixel_values of a uint8 batch: PIL conversion, then the encoder's own processor."""
    return encoder.processor(images=_as_rgb_images(batch), return_tensors="pt")["pixel_values"]


def pixel_values(encoder: Encoder, batch: torch.Tensor, pool: ThreadPoolExecutor | None = None,
                 workers: int = 1) -> torch.Tensor:
    """``_processed`` of the batch, split into ``workers`` slices run by ``pool``.

    The processor works one image at a time in Python and PIL (transformers' PIL backend: no torchvision), so alone
    it runs on one core while the model's forward uses all of torch's threads: its share grows with the threads
    (1-2% of a ViT-S/14 or CLIP ViT-B/32 forward on one thread for 320x240 photos, bench/foundation.py; eight times
    that beside a forward on eight cores). PIL's resize and numpy release the GIL, so slices in threads run in
    parallel; each image is processed exactly as alone."""
    if pool is None or workers < 2 or len(batch) < 2:
        return _processed(encoder, batch)
    slices = torch.tensor_split(batch, min(workers, len(batch)))
    return torch.cat(list(pool.map(lambda part: _processed(encoder, part), slices)))


def _compute(encoder: Encoder, x: torch.Tensor, batch_size: int, progress: bool, desc: str) -> torch.Tensor:
    from tqdm import tqdm

    parts, workers = [], max(1, torch.get_num_threads())  # as many as the forward uses, no more
    with (ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode(),
          tqdm(total=len(x), desc=desc, unit="img", disable=not progress, dynamic_ncols=True, leave=False) as bar):
        for number, start in enumerate(range(0, len(x), batch_size)):
            batch = x[start:start + batch_size]
            t0 = time.perf_counter()
            parts.append(pooled(encoder.model(pixel_values=pixel_values(encoder, batch, pool, workers))).float().cpu())
            if number == 1:  # the first batch pays for warm-up; the second says what the rest will cost
                say_if_long(encoder, (time.perf_counter() - t0) / len(batch), len(x) - start - len(batch), progress)
            bar.update(len(batch))
    return torch.cat(parts)


def say_if_long(encoder: Encoder, per_image_s: float, images_left: int, progress: bool) -> None:
    """One line on stderr when the embedding has more than an hour left (always) or more than a minute (with the
    progress bar's own estimate beside it, said once in words): a CPU runs a ViT-B at a few images a second."""
    left = per_image_s * images_left
    if left < 60 or (left < LONG_S and not progress):
        return
    text = (f"embedding with {encoder.name}: about {duration_text(left)} left ({images_left:,} images at "
            f"{per_image_s:.2f} s an image; cached afterwards)")
    if left >= LONG_S:
        text += "; to shorten it use a smaller encoder (ViT-S/14 costs ~1/4 of ViT-B/14), fewer images, or a GPU"
    print(text, file=sys.stderr, flush=True)


def embed_images(encoder: Encoder, x: torch.Tensor, batch_size: int = 32, progress: bool = True,
                 use_cache: bool = True, desc: str = "embedding") -> torch.Tensor:
    """Embeddings (N, D) float32 of the images ``x`` (uint8 N, C, H, W), from the cache when this encoder has seen
    these images before. The cache file is written whole (temp file, then rename); an unwritable cache is skipped."""
    if x.dim() != 4:
        raise FewLabelsError(f"a foundation encoder embeds images, but these samples have shape {tuple(x.shape[1:])}; "
                             "pass an image dataset.")
    if len(x) == 0:
        return torch.zeros((0, 0))
    path = cache_dir() / f"{cache_key(encoder, x)}.npy"
    if use_cache and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.ndim == 2 and len(cached) == len(x):
                return torch.from_numpy(cached)
        except (OSError, ValueError):
            pass  # unreadable: compute again and replace it
    out = _compute(encoder, x, batch_size, progress, desc)
    if use_cache:
        from fewlabels.utils.io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, out.numpy(), allow_pickle=False)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            pass  # a read-only or full cache folder costs the next call its time, not this call its result
    return out


def embeddings_npz(encoder: Encoder, source: DataSource, batch_size: int = 32, progress: bool = True) -> dict[str, np.ndarray]:
    """Arrays in the ``.npz`` layout ``train --dataset`` reads: X, y (-1 unlabeled), X_test, y_test, classes."""
    if not source.train.is_image:
        raise FewLabelsError(f"{source.train.name} holds features, not images; a foundation encoder embeds images.")
    arrays = {"X": embed_images(encoder, source.train.x, batch_size, progress, desc="embedding train").numpy(),
              "y": source.train.y.numpy().astype(np.int64), "classes": np.asarray(source.train.classes)}
    if source.test is not None and len(source.test):
        arrays["X_test"] = embed_images(encoder, source.test.x, batch_size, progress, desc="embedding test").numpy()
        arrays["y_test"] = source.test.y.numpy().astype(np.int64)
    return arrays
