"""Predictions of a trained model on new inputs (image files and folders, or one .npy array), and their CSV."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fewlabels.errors import FewLabelsError
from fewlabels.evaluate import inputs
from fewlabels.evaluate.runs import stream_logits
from fewlabels.utils.io import atomic_write_text


@dataclass
class Predictions:
    """One row per input: its name (a path, or the row number of an array) and the class probabilities."""

    items: list[str]
    probs: torch.Tensor  # (N, K) float64, columns in the order of ``classes``
    classes: list[str]

    def counts(self) -> list[tuple[str, int]]:
        """(class, how many inputs were given it), most predicted first; classes never predicted left out."""
        counts = torch.bincount(self.probs.argmax(1), minlength=len(self.classes)).tolist()
        return [(c, n) for n, c in sorted(zip(counts, self.classes), reverse=True) if n]


def check_inputs(names: Sequence[str]) -> None:
    """Refuse a mix of a .npy array with other inputs, before the model is loaded."""
    npy = [i for i in names if str(i).lower().endswith(".npy")]
    if npy and len(names) > 1:
        raise FewLabelsError(f"A .npy array ({npy[0]}) must be the only input; predict it on its own.")


def predict_inputs(run, names: Sequence[str], batch_size: int = 256, quiet: bool = True) -> Predictions:
    """Class probabilities of ``run`` (a ``fewlabels.Run``) for image folders (searched recursively), image files, or one .npy array.

    As predict serves them: a plain run is served at its recorded TTA and temperature, as ``Run.predict_proba`` is.
    """
    from fewlabels.evaluate.tta import ServedRun, served

    check_inputs(names)
    run = run if isinstance(run, ServedRun) else served(run)
    if str(names[0]).lower().endswith(".npy"):
        x = inputs.load_npy(names[0], run.sample_shape)
        items = [str(i) for i in range(len(x))]
        batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    else:
        paths = inputs.image_paths(names)
        items = [str(p) for p in paths]
        batches = inputs.image_batches(paths, run.sample_shape, batch_size)
    logits = stream_logits(run, batches, len(items), quiet, "predict")
    return Predictions(items, torch.softmax(logits.double(), dim=1), list(run.classes))


def predictions_csv(predictions: Predictions) -> str:
    """item, class, probability (of that class), then one p_<class> column per class; six decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    classes = predictions.classes
    writer.writerow(["item", "class", "probability", *(f"p_{c}" for c in classes)])
    conf, pred = predictions.probs.max(1)
    for item, k, p, row in zip(predictions.items, pred.tolist(), conf.tolist(), predictions.probs.tolist()):
        writer.writerow([item, classes[k], f"{p:.6f}", *(f"{v:.6f}" for v in row)])
    return buf.getvalue()


def write_predictions_csv(path: str | os.PathLike, predictions: Predictions) -> None:
    """The CSV of ``predictions_csv``, written atomically (no half-written file on failure)."""
    atomic_write_text(path, predictions_csv(predictions))


__all__ = ["Predictions", "check_inputs", "predict_inputs", "predictions_csv", "write_predictions_csv"]
