"""A pipeline folder's manifest, pipeline.json: its one reader and writer, and whether a folder holds one.

Every command that opens a pipeline folder (``pipeline --resume``, and evaluate, probe, report, ``--init``
or a teacher through ``resolve_run``) reads the manifest through ``read_manifest``, so a damaged one is
one sentence everywhere instead of an IndexError in one command and a TypeError in another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import atomic_write_json

MANIFEST = "pipeline.json"
PIPELINE_FORMAT = 1


def read_manifest(out: Path) -> dict[str, Any]:
    """``out``'s pipeline.json, checked whole: every field a reader uses has the type it expects."""
    out = Path(out)
    file = out / MANIFEST
    if not file.is_file():
        raise FewLabelsError(f"{out} holds no pipeline ({MANIFEST} is missing); start one with fewlabels pipeline --out {out}.")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise FewLabelsError(f"{file} is damaged (not valid JSON); restore it or start the pipeline again.") from None
    if not isinstance(record, dict) or record.get("format") != PIPELINE_FORMAT:
        what = f"it holds a JSON {_json_type(record)}" if not isinstance(record, dict) else "its format is not " \
            f"{PIPELINE_FORMAT}"
        raise FewLabelsError(f"{file} is not a fewlabels pipeline record of format {PIPELINE_FORMAT} ({what}); restore "
                             "it or start the pipeline again.")
    problem = _problem(record)
    if problem:
        raise FewLabelsError(f"{file} is damaged ({problem}); restore it or start the pipeline again.")
    return record


def write_manifest(out: Path, record: dict[str, Any]) -> None:
    """Write ``out``'s pipeline.json whole (atomically: a kill leaves the old record or the new one)."""
    atomic_write_json(Path(out) / MANIFEST, record)


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _problem(record: dict[str, Any]) -> str | None:
    """What is wrong with a format-1 record, in a few words; None when every field is as a reader expects."""
    stages = record.get("stages")
    if not isinstance(stages, list) or not stages:
        return "'stages' must be a non-empty list of stages"
    if not isinstance(record.get("common", {}), dict):
        return "'common' must be a mapping of settings"
    names: list[str] = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            return f"stage {i + 1} is a {_json_type(stage)}, not a mapping"
        name = stage.get("name")
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or name in names:
            return f"stage {i + 1} has no folder name of its own ('name': {name!r})"
        if not isinstance(stage.get("config"), dict):
            return f"stage {name} has no 'config' mapping"
        for key in ("init_from", "teacher_from"):
            if stage.get(key) is not None and stage.get(key) not in names:
                return f"stage {name}'s '{key}' is {stage.get(key)!r}, not an earlier stage"
        if not isinstance(stage.get("status", ""), str):
            return f"stage {name}'s 'status' is not text"
        names.append(name)
    final = record.get("final_stage")
    if final is not None and final not in names:
        return f"'final_stage' is {final!r}, not one of the stages {', '.join(names)}"
    return None


def _looks_like_manifest(file: Path) -> bool:
    """A pipeline.json fewlabels wrote (a JSON mapping of our format), damaged or not; a user's file of that name is not."""
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and record.get("format") == PIPELINE_FORMAT


def holds_pipeline(folder: Path) -> bool:
    """Whether ``folder`` holds a pipeline fewlabels wrote (its pipeline.json, damaged or not; a link is not one)."""
    file = Path(folder) / MANIFEST
    return file.is_file() and not file.is_symlink() and _looks_like_manifest(file)
