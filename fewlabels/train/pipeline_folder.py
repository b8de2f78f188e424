"""A pipeline folder on disk: the one reader of its pipeline.json, and what a new pipeline may replace in it.

Every command that opens a pipeline folder (``pipeline --resume``, and evaluate, probe, report, ``--init``
or a teacher through ``resolve_run``) reads the manifest through ``read_manifest``, so a damaged one is
one sentence everywhere instead of an IndexError in one command and a TypeError in another.

A new pipeline needs a folder of its own: without ``overwrite`` an --out folder that holds anything is
refused; with it, only what fewlabels wrote is replaced (pipeline.json, run folders, their evaluations and
reports; ``RunFolder.contents`` says which files those are), and a folder holding a user's file is refused,
naming the file, before anything is touched. A new run in a pipeline folder (``train --out P --overwrite``)
replaces the pipeline by the same decision (``RunFolder.check_new`` and ``start`` call ``replaceable``), so
what may be replaced is said here once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fewlabels.errors import FewLabelsError
from fewlabels.train.run_folder import RunFolder

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


def replaceable(out: Path, overwrite: bool) -> list[Path]:
    """The files a new pipeline in ``out`` replaces (none for a new or empty folder); refuses, in one sentence, a
    folder that holds anything without ``overwrite``, and one holding a file fewlabels did not write with it.

    What fewlabels wrote: pipeline.json, and in ``out`` and each folder right under it a run's files and what
    evaluate and report write beside them (``RunFolder.contents``); anything else, links included, is the user's,
    an exported model too (fewlabels wrote it, but for the user to keep).
    """
    if not out.is_dir() or not any(out.iterdir()):
        return []
    own, other = RunFolder(out).contents()
    foreign = []
    for entry in other:
        if entry.name == MANIFEST and holds_pipeline(out):
            own.append(entry)
        elif entry.is_dir() and not entry.is_symlink():
            inner_own, inner_other = RunFolder(entry).contents()
            own += inner_own
            # an empty folder holds nothing to lose
            foreign += [e for e in inner_other if e.is_symlink() or not e.is_dir() or any(e.iterdir())]
        else:
            foreign.append(entry)
    if not overwrite:
        if (out / MANIFEST).exists():
            raise FewLabelsError(f"{out} already holds a pipeline; continue it with --resume {out}, or pass --overwrite "
                                 "to replace it.")
        run = RunFolder(out)
        if run.run_files():
            state = "finished " if run.results() else ""
            raise FewLabelsError(f"{out} holds a {state}training run, and a pipeline needs a folder of its own; choose "
                                 "another --out folder, or pass --overwrite to replace the run.")
        if foreign:
            raise FewLabelsError(f"{out} holds {foreign[0]}, which is not a run's or a pipeline's own file, and a pipeline "
                                 "needs a new or empty folder; choose another --out folder.")
        if own:
            raise FewLabelsError(f"{out} already holds what fewlabels wrote ({own[0]}); choose another --out folder, or "
                                 "pass --overwrite to replace it.")
        return []
    if foreign:
        raise FewLabelsError(f"--overwrite replaces only what fewlabels wrote for a run or a pipeline (their records, "
                             f"evaluations and reports), and {foreign[0]} is none of those; move it out of {out}, or "
                             "choose another --out folder.")
    return own


def replace(out: Path, files: list[Path]) -> str | None:
    """Remove ``files`` (from ``replaceable``) and the folders under ``out`` they leave empty; the line saying what went."""
    if not files:
        return None
    tops = sorted({f.relative_to(out).parts[0] + ("/" if len(f.relative_to(out).parts) > 1 else "") for f in files})
    for file in files:
        file.unlink(missing_ok=True)
    for folder in sorted({f.parent for f in files}, key=lambda p: len(p.parts), reverse=True):
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    shown = ", ".join(tops[:8]) + (f" and {len(tops) - 8} more" if len(tops) > 8 else "")
    return f"--overwrite: replaced what fewlabels wrote in {out}: {shown}"
