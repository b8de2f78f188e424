"""What a new pipeline, or a new run, may replace in its --out folder, and the replacing.

A new pipeline needs a folder of its own: without ``overwrite`` an --out folder that holds anything is
refused; with it, only what fewlabels wrote is replaced (pipeline.json, run folders, their evaluations and
reports; ``ownership.contents`` says which files those are), and a folder holding a user's file is refused,
naming the file, before anything is touched. A new run in a pipeline folder (``train --out P --overwrite``)
replaces the pipeline by the same decision (``RunFolder.check_new`` and ``start`` call ``replaceable``), so
what may be replaced is said here once.
"""

from __future__ import annotations

from pathlib import Path

from fewlabels.errors import FewLabelsError
from fewlabels.storage.manifest import MANIFEST, holds_pipeline
from fewlabels.storage.ownership import EMBEDDINGS_FILE
from fewlabels.storage.reading import RunReader
from fewlabels.utils.provenance import recognise


def replaceable(out: Path, overwrite: bool) -> list[Path]:
    """The files a new pipeline in ``out`` replaces (none for a new or empty folder); refuses, in one sentence, a
    folder that holds anything without ``overwrite``, and one holding a file fewlabels did not write with it.

    What fewlabels wrote: pipeline.json, and in ``out`` and each folder right under it a run's files and what
    evaluate and report write beside them (``ownership.contents``); anything else, links included, is the user's,
    an exported model too (fewlabels wrote it, but for the user to keep).
    """
    if not out.is_dir() or not any(out.iterdir()):
        return []
    own, other = RunReader(out).contents()
    foreign = []
    for entry in other:
        if (entry.name == MANIFEST and holds_pipeline(out)) or (entry.name == EMBEDDINGS_FILE and recognise(entry)):
            own.append(entry)
        elif entry.is_dir() and not entry.is_symlink():
            inner_own, inner_other = RunReader(entry).contents()
            own += inner_own
            # an empty folder holds nothing to lose
            foreign += [e for e in inner_other if e.is_symlink() or not e.is_dir() or any(e.iterdir())]
        else:
            foreign.append(entry)
    if not overwrite:
        if (out / MANIFEST).exists():
            raise FewLabelsError(f"{out} already holds a pipeline; continue it with --resume {out}, or pass --overwrite "
                                 "to replace it.")
        run = RunReader(out)
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
