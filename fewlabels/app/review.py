"""After a round: what the page shows about the labels given, from the round's model.

Per class: the accuracy on the labels the run held out (its validation split, where each class had enough labels
to spare some), and ``check-labels``' view of the labels it trained on: how many are suspects (another class
explains them better, out of sample) and the share not doubted. The suspects themselves are listed for review.
A failure is a note the page shows instead of the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fewlabels.app.training import listing_path
from fewlabels.errors import FewLabelsError

NO_HOLD_OUT = "too few labels per class to hold some out (4 or more in every class); no accuracy on held-out labels"


def review_round(run: Path, dataset: Path, root: Path, seed: int) -> dict:
    """check-labels' suspects and the per-class figures for the finished round in ``run``; samples relative to ``root``."""
    from fewlabels.api import load
    from fewlabels.select.suggestion import check_run

    review: dict = {"run": run.name, "state": "ready", "suspects": [], "per_class": [], "note": "",
                    "held_out_note": ""}
    try:
        trained = load(run)
        held, review["held_out_note"] = held_out_accuracy(trained, run, root)
        check = check_run(trained, str(run), str(dataset), seed=seed)
        rows = check.rows
        for row in rows:
            row["sample"] = Path(row["sample"]).relative_to(root).as_posix()
        review["suspects"] = [r for r in rows if r["flagged"]]
        for c in trained.classes:
            mine = [r for r in rows if r["given"] == c]
            flagged = sum(r["flagged"] for r in mine)  # another class likelier out of sample
            review["per_class"].append({"class": c, "labels": len(mine), "flagged": flagged,
                                        "undoubted": 1 - flagged / len(mine) if mine else None,
                                        **held.get(c, {"held_out": 0, "correct": 0, "accuracy": None})})
    except FewLabelsError as exc:
        review["note"] = str(exc)
    return review


def held_out_accuracy(trained, run: Path, root: Path) -> tuple[dict[str, dict], str]:
    """Per class: how many labels the run held out, how many its model gets right, and the share; or a note why not.

    The held-out labels are the run's own validation split, found again as ``train`` drew it (the same seeded
    ``split`` on the folder's labels as the round was started, kept beside the run); a folder changed between the
    start and train's reading of it, or a held-out file moved since, is said, never guessed around.
    """
    from fewlabels import data as data_mod
    from fewlabels.evaluate.predictions import predict_inputs
    from fewlabels.storage import RunFolder

    cfg = trained.config
    if not cfg.val_per_class:
        return {}, NO_HOLD_OUT
    try:
        listing = json.loads(listing_path(run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, f"{listing_path(run).name} is missing, so the held-out labels are unknown; no per-class accuracy."
    results = RunFolder(run).results()
    labels = np.asarray(listing["labels"], dtype=np.int64)
    split = data_mod.split(labels, cfg.labels_per_class, cfg.num_labels, cfg.val_per_class, cfg.seed, listing["classes"])
    if (listing["classes"] != list(trained.classes) or len(split.validation) != results.get("num_validation")
            or len(split.labeled) != results.get("num_labeled") or cfg.label_noise or cfg.imbalance_ratio != 1.0):
        return {}, "the folder changed as the round started, so its held-out labels are unknown; no per-class accuracy."
    paths = [root / listing["samples"][i] for i in split.validation]
    if not all(p.is_file() for p in paths):
        return {}, "a held-out labeled file moved since the round started; no per-class accuracy."
    predicted = predict_inputs(trained, [str(p) for p in paths]).probs.argmax(1).numpy()
    given = labels[split.validation]
    out = {}
    for k, c in enumerate(trained.classes):
        mine = given == k
        n, right = int(mine.sum()), int((predicted[mine] == k).sum())
        out[c] = {"held_out": n, "correct": right, "accuracy": right / n if n else None}
    return out, ""
