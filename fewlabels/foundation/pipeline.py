"""The pipeline from a foundation encoder (``pipeline --encoder``): what its teacher stage needs before any stage runs.

Stage 1 (``1-teacher``) is an ordinary run on the encoder's embeddings of every image (labeled, unlabeled, test),
written once to ``embeddings.npz`` in the pipeline's folder, with the feature path's method (labelprop); stage 2
(``2-distill``) distils it into the pipeline's ``--model`` at the student's resolution, the teacher's logits looked up
per image (``foundation.teacher``). Everything that can refuse (the encoder, the data, the stages' settings) is
checked here before the pipeline's folder is touched; the embedding itself is computed before too, in memory, and
written only after the folder is ready, so a failure leaves nothing half-written.

The images are embedded at their own resolution where the data source has it: an image folder is read with its longer
side brought to the encoder processor's input size (shrinking only; 4/3 of it when the processor resizes the shorter
side and crops), not to the student's ``--image-size``; arrays and built-in datasets come at their own size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewlabels.errors import FewLabelsError
from fewlabels.foundation.teacher import EMBEDDINGS

if TYPE_CHECKING:
    from fewlabels.foundation.loading import Encoder

def check_student(settings: dict[str, Any]) -> None:
    """Refuse, before any work, a student of an encoder's head that mixes images: the head has no output to match."""
    mixup = (settings.get("options") or {}).get("mixup")
    if isinstance(mixup, int | float) and mixup > 0:
        raise FewLabelsError("a student of a foundation encoder's head cannot use mixup (the teacher's logits are looked "
                             "up per image, and the encoder never saw the mixed one); leave options.mixup at 0.")


def processor_side(processor: Any) -> int | None:
    """The longer side images are read at for this processor: its input size (4/3 of it for shortest-edge resizing)."""
    sizes: list[int] = []
    shortest = False
    for attr in ("size", "crop_size"):
        value = getattr(processor, attr, None)
        if isinstance(value, dict):
            sizes += [int(v) for v in value.values() if isinstance(v, int | float) and v]
            shortest = shortest or "shortest_edge" in value
        elif isinstance(value, int | float) and value:
            sizes.append(int(value))
    if not sizes:
        return None
    return math.ceil(max(sizes) * 4 / 3) if shortest else max(sizes)


def load_encoders(stages: Sequence[Any]) -> dict[str, Encoder]:
    """The encoder of each stage that names one, by stage name; refused in one sentence if it cannot embed images."""
    from fewlabels.foundation.loading import load_encoder

    return {s.name: load_encoder(s.encoder) for s in stages if s.encoder is not None}


def embed_images_for(encoders: dict[str, Encoder], config: Any, source: Any, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Each encoder stage's arrays (X, y, X_test, y_test, classes, the encoder's name and weights key), in memory: the
    images of ``config``'s dataset read at their own resolution and embedded through the encoder's processor, with the
    content-hash cache."""
    from fewlabels import data
    from fewlabels.foundation.embedding import embeddings_npz

    embedded = {}
    for name, encoder in encoders.items():
        images = source if source is not None else data.load(config.dataset, config.data_dir, shrink_only=True,
                                                             side=processor_side(encoder.processor))
        if not images.train.is_image:
            raise FewLabelsError(f"--encoder embeds images, but {config.dataset} holds feature vectors; train on them "
                                 "directly (a pipeline without --encoder), or pass an image dataset.")
        arrays = embeddings_npz(encoder, images, progress=progress)
        arrays["encoder"], arrays["encoder_key"] = np.asarray(encoder.name), np.asarray(encoder.key)
        embedded[name] = arrays
    return embedded


def write_embeddings(out: Path, entries: list[dict[str, Any]], embedded: dict[str, dict[str, np.ndarray]]) -> None:
    """``out/embeddings.npz``, stamped as fewlabels' own (``--overwrite`` may replace it) and written whole, and in
    the stage's manifest entry which encoder taught it: the name given and the content hash of its weights."""
    from fewlabels.utils.io import write_output

    for entry in entries:
        arrays = embedded.get(entry["name"])
        if arrays is None:
            continue
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_output(out / EMBEDDINGS, buf.getvalue(), "npz")
        entry.update(encoder=str(arrays["encoder"]), encoder_key=str(arrays["encoder_key"]))
