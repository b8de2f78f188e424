"""A frozen teacher for an algorithm that names one (``teacher=RUN_DIR``), read through the one run-folder reader.

Its own file, so that another kind of teacher (an encoder from outside) is a file beside it, not lines in the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fewlabels.algorithms import Algorithm
from fewlabels.data import Split
from fewlabels.errors import FewLabelsError
from fewlabels.foundation.teacher import lookup_teacher
from fewlabels.storage import RunFolder, build_model, resolve_run
from fewlabels.train.student import in_layout


def load_teacher(algorithm: Algorithm, classes: Sequence[str], sample_shape: tuple[int, ...], device: torch.device,
                 channels_last: bool, split: Split | None = None) -> nn.Module | None:
    """The finished run the algorithm's ``teacher`` option names, in eval mode on ``device``; None where it needs none.

    A head trained on a foundation encoder's embeddings of these images (an encoder pipeline's teacher stage) comes
    as a ``LookupTeacher`` (foundation/teacher.py): its logits of every image of ``split``, looked up, not computed.

    Refused in one sentence: a run that is not finished (a half-trained teacher would pass its mistakes on
    silently), or one trained on other classes or samples of another shape.
    """
    path = getattr(algorithm, "teacher", None) if "teacher" in algorithm.requires else None
    if not path:
        return None
    folder = RunFolder(resolve_run(path))
    config, teacher_classes, shape, state = folder.final_model()  # one read of the checkpoint
    if folder.path.is_dir() and not folder.results():
        how = f"train --resume {path}" if folder.path.samefile(path) else f"pipeline --resume {path}"
        raise FewLabelsError(f"The teacher {path} is not a finished run (it has no results.json); finish it with "
                             f"fewlabels {how}, or name a finished run.")
    n = sum(len(part) for part in (split.labeled, split.unlabeled, split.validation)) if split is not None else 0
    looked_up = lookup_teacher(folder.path, config, teacher_classes, shape, state, classes, split, n)
    if looked_up is not None:
        return looked_up.to(device)
    model = build_model(folder.source, config.get("model", ""), shape, len(teacher_classes), state).eval()
    if list(teacher_classes) != list(classes) or tuple(shape) != tuple(sample_shape):
        raise FewLabelsError(f"The teacher {path} was trained on classes {teacher_classes} and samples of shape {tuple(shape)}, "
                             f"but this data has {classes} and {tuple(sample_shape)}; distil on data like "
                             "the teacher's.")
    return in_layout(model.to(device), channels_last)  # the student's layout: a contiguous teacher ran ~2x slower
