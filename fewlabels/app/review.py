"""After a round: what the page shows about the labels given, from ``check-labels`` on the round's model.

The suspects (samples whose given label another class explains better, out of sample) and, per class, how many
labels were flagged; a failure is the note the page shows instead.
"""

from __future__ import annotations

from pathlib import Path

from fewlabels.errors import FewLabelsError


def review_round(run: Path, dataset: Path, root: Path, seed: int) -> dict:
    """check-labels' suspects and per-class agreement for the finished round in ``run``; samples relative to ``root``."""
    from fewlabels.api import load
    from fewlabels.select.suggestion import check_run

    review: dict = {"run": run.name, "state": "ready", "suspects": [], "per_class": [], "note": ""}
    try:
        trained = load(run)
        check = check_run(trained, str(run), str(dataset), seed=seed)
        rows = check.rows
        for row in rows:
            row["sample"] = Path(row["sample"]).relative_to(root).as_posix()
        review["suspects"] = [r for r in rows if r["flagged"]]
        for c in trained.classes:
            mine = [r for r in rows if r["given"] == c]
            flagged = sum(r["flagged"] for r in mine)  # another class likelier out of sample
            review["per_class"].append({"class": c, "labels": len(mine), "flagged": flagged,
                                        "agreement": 1 - flagged / len(mine) if mine else None})
    except FewLabelsError as exc:
        review["note"] = str(exc)
    return review
