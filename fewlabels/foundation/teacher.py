"""A teacher from a foundation encoder, for distillation: its logits looked up per training image, not computed.

A ViT forward per distillation step is unaffordable on a CPU (ViT-S/14 at 224 px embeds tens of images a second on
two cores; a step reads hundreds), so the encoder pipeline's teacher stage embeds every image once (cached) and trains
a head on the embeddings, an ordinary run on the embedding arrays (``embeddings.npz``, written by
``foundation.pipeline``). This teacher is that head applied once to every training and test image's embedding, kept
as tables of logits and looked up by the batch's positions (``index``), so a distillation step costs the student's
forward only, and nothing here needs ``transformers``.

Function matching, with the encoder's view: the teacher's row is the clean image as the encoder's own processor sees
it, at the image's own resolution; the student sees its own augmented view at its size. A flipped or cropped student
view is matched to the clean image's output (one row per image). Mixup has no teacher output to match (the encoder
never saw the mixed image), so the pipeline refuses it with this teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.storage.ownership import EMBEDDINGS_FILE

EMBEDDINGS = EMBEDDINGS_FILE  # the teacher stage's data, in the pipeline's folder
ENCODER_FIELDS = ("encoder", "encoder_key")  # arrays of the .npz naming the encoder that wrote it


class LookupTeacher(nn.Module):
    """Tables of teacher logits: one row per labeled sample, per unlabeled sample, per test sample.

    The tables are non-persistent buffers: they move with the algorithm to its device but are no part of a
    checkpoint (they are computed again, identically, from the teacher's folder when a run resumes).
    """

    looks_up = True  # what the distill algorithm asks, instead of calling the teacher on the images

    def __init__(self, labeled: torch.Tensor, unlabeled: torch.Tensor, test: torch.Tensor | None, encoder: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("labeled_logits", labeled.float(), persistent=False)
        self.register_buffer("unlabeled_logits", unlabeled.float(), persistent=False)
        self.register_buffer("test_logits", test.float() if test is not None else None, persistent=False)

    def lookup(self, labeled_index: torch.Tensor, unlabeled_index: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of a batch: its labeled rows, then its unlabeled rows (positions, as batches carry)."""
        return torch.cat([self.labeled_logits[labeled_index], self.unlabeled_logits[unlabeled_index]])

    def forward(self, x: torch.Tensor) -> Any:
        raise TypeError("a looked-up teacher has no forward on images; use lookup(labeled_index, unlabeled_index)")


def embeddings_of(folder_path: Path, config: dict[str, Any]) -> Path | None:
    """The embeddings file an encoder head was trained on (where its pipeline is now), or None for any other run."""
    dataset = str(config.get("dataset") or "")
    if not dataset.endswith(".npz"):
        return None
    path = Path(dataset)
    if not path.is_file():  # the pipeline moved: the file sits beside the teacher's folder, as it was written
        path = folder_path.parent / path.name
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return path if all(k in f.files for k in ENCODER_FIELDS) else None
    except (OSError, ValueError):
        return None


def lookup_teacher(folder_path: Path, config: dict[str, Any], classes: Sequence[str], shape: tuple[int, ...],
                   state: dict[str, torch.Tensor], student_classes: Sequence[str], split: Any,
                   num_samples: int) -> LookupTeacher | None:
    """The head in ``folder_path`` applied to every image's embedding, or None when the folder is no encoder's head.

    Refused in one sentence: embeddings of other images (another count or other classes than the student's data).
    """
    from fewlabels.evaluate import predict_logits
    from fewlabels.storage import build_model

    path = embeddings_of(folder_path, config)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as f:
        x = torch.from_numpy(f["X"]).float()
        x_test = torch.from_numpy(f["X_test"]).float() if "X_test" in f.files else None
        encoder = str(f["encoder"])
    if list(classes) != list(student_classes) or len(x) != num_samples or split is None:
        raise FewLabelsError(f"The teacher {folder_path} was trained on {encoder}'s embeddings of {len(x)} samples of "
                             f"classes {list(classes)}, but this data has {num_samples} samples of {list(student_classes)}; "
                             "distil on the images the teacher embedded.")
    head = build_model(folder_path, config.get("model", ""), shape, len(classes), state).eval()
    cpu = torch.device("cpu")
    logits = predict_logits(head, x, 1024, cpu, False)
    test = predict_logits(head, x_test, 1024, cpu, False) if x_test is not None else None
    labeled = torch.as_tensor(np.asarray(split.labeled), dtype=torch.int64)
    unlabeled = torch.as_tensor(np.asarray(split.unlabeled), dtype=torch.int64)
    return LookupTeacher(logits[labeled], logits[unlabeled], test, encoder)
