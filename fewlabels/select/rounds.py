"""A labeling round, going out: the picks as CSV, and copied out to sort; ``merge.py`` brings the labels back in.

Folders: ``suggest --copy-to DIR`` copies (or links) each picked file from the dataset's
``unlabeled/`` into DIR, with an empty DIR/<class>/ per known class; the user moves each copy into
its class subfolder (new class names are fine); ``merge-labels --dataset FOLDER --sorted DIR``
then moves the originals from ``unlabeled/`` into FOLDER/<class>/, where the next ``train`` or
``pipeline`` on FOLDER finds them labeled. Two picks may share a file name (unlabeled/x/p.png and
unlabeled/y/p.png): each copy gets a name of its own (x__p.png, y__p.png), written in picks.csv's
``copy`` column and in DIR/.fewlabels-copies.json (hidden, so never read as a class or a copy), which
maps each copy back to its original; an original keeps its path under unlabeled/ inside its class
folder (a class folder's subfolders are that class). No copy is ever written over a file.

Both sides change several files, so each plans first (every name, every clash, every folder it will
write), refuses in one sentence before touching anything, and only then applies; a failure while
applying (a full disk) undoes what was done.

Arrays: picks.csv names rows; the user fills its ``label`` column (a class index or name), and
``merge-labels --labels`` reads it back (``merge.py``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from fewlabels.data.folder import TRAIN, UNLABELED
from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import atomic_write_text, check_writable_dir, write_output

CSV_COLUMNS = ("rank", "sample", "strategy", "reason", "score", "predicted", "confidence", "copy", "label")
MANIFEST = ".fewlabels-copies.json"  # in a --copy-to folder: copy name -> the original's path under unlabeled/


def resolved(path: str | os.PathLike, flag: str) -> Path:
    """``path`` with its symbolic links followed; a loop of links is the user's to fix, in one sentence."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError (ELOOP) from it on
        raise FewLabelsError(f"{flag} {path} is a loop of symbolic links; give a real path.") from None


def check_outside_images(path: str | os.PathLike, dataset: str | None, flag: str) -> None:
    """Refuse an output file inside an image-folder dataset's subfolders, where the next train would read it as data,
    and one that is a loop of symbolic links (for any dataset).

    Files at the top of the dataset folder are fine: the reader looks at its subfolders only.
    """
    where = resolved(path, flag)
    if not dataset or not Path(dataset).is_dir():
        return
    root = resolved(dataset, "--dataset")
    if root in where.parents and where.parent != root:
        raise FewLabelsError(f"{flag} {path} is inside the image folder {root}, where the next train would read it as "
                             "data; write it elsewhere.")


def picks_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    return buf.getvalue()


def write_picks(path: str | os.PathLike, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_output(path, picks_csv(rows), "csv")


def check_copy_to(target: str | os.PathLike, root: Path | None, kind: str) -> Path:
    """Refuse, before any work, a --copy-to folder for non-folder data, inside the dataset, or not writable."""
    target = Path(target)
    if kind != "folder" or root is None:
        raise FewLabelsError("--copy-to works on image folders; for arrays fill picks.csv's label column and run "
                             "fewlabels merge-labels.")
    dataset = (root.parent if root.name == TRAIN else root).resolve()
    where = resolved(target, "--copy-to")
    if where == dataset or dataset in where.parents:
        raise FewLabelsError(f"--copy-to {target} is inside the dataset {dataset}, where the copies would be read as "
                             "data; choose a folder outside it.")
    if os.path.lexists(target) and not target.is_dir():
        raise FewLabelsError(f"--copy-to {target} is not a folder (a file or a broken link); give a new or empty folder.")
    if target.is_dir() and any(target.iterdir()):
        raise FewLabelsError(f"--copy-to {target} is not empty; give a new or empty folder.")
    check_writable_dir(target)
    return target


def copy_names(paths: list[str], root: Path, classes: list[str]) -> list[str]:
    """A distinct name for the copy of each picked file: its own name where no other pick shares it, else its path
    under ``root/unlabeled`` joined by ``__`` (numbered if even that clashes); never a class folder's name."""
    unlabeled = root / UNLABELED
    rels = []
    for p in paths:
        try:
            rels.append(Path(p).relative_to(unlabeled))
        except ValueError:
            rels.append(Path(Path(p).name))
    counts: dict[str, int] = {}
    for rel in rels:
        counts[rel.name] = counts.get(rel.name, 0) + 1
    reserved = set(classes) | {MANIFEST}
    own = {rel: counts[rel.name] == 1 and rel.name not in reserved for rel in rels}  # keeps its own name
    taken = reserved | {rel.name for rel in rels if own[rel]}
    names = []
    for rel in rels:
        if own[rel]:
            names.append(rel.name)
            continue
        name = "__".join(rel.parts)
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in taken:
            name, n = f"{stem}-{n}{suffix}", n + 1
        taken.add(name)
        names.append(name)
    return names


def _create_copy(src: Path, dst: Path, link: bool) -> None:
    """A new file (or link) ``dst``; never written over anything that is there."""
    try:
        if link:
            dst.symlink_to(src.resolve())
            return
        with open(src, "rb") as f, open(dst, "xb") as g:
            try:
                shutil.copyfileobj(f, g)
                g.flush()
                shutil.copystat(src, dst)
            except BaseException:
                dst.unlink()  # ours, half-written
                raise
    except FileExistsError:
        raise FewLabelsError(f"{dst} appeared while the picks were copied; nothing was overwritten, give a new "
                             "--copy-to folder.") from None


def copy_picks(paths: list[str], target: Path, classes: list[str], link: bool = False,
               root: Path | None = None) -> list[Path]:
    """Copy (or symlink) each picked file of ``root/unlabeled`` into ``target`` under its ``copy_names`` name, with an
    empty subfolder per known class and the manifest that maps copies back; returns what it created, for ``undo_copies``.

    All or nothing: if a copy fails (a full disk), what this call created is removed again.
    """
    names = copy_names(paths, root, classes) if root is not None else [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise FewLabelsError("two picks have the same file name; give the dataset's folder so copies can be told apart.")
    created: list[Path] = []
    try:
        if not target.is_dir():
            target.mkdir(parents=True)
            created.append(target)
        for c in classes:
            if not (target / c).is_dir():
                (target / c).mkdir()
                created.append(target / c)
        for p, name in zip(paths, names):
            _create_copy(Path(p), target / name, link)
            created.append(target / name)
        if root is not None:
            manifest = {"dataset": str(root.resolve()), "copies": {n: Path(p).relative_to(root / UNLABELED).as_posix()
                                                         for p, n in zip(paths, names)
                                                         if Path(p).is_relative_to(root / UNLABELED)}}
            atomic_write_text(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
            created.append(target / MANIFEST)
    except BaseException:
        undo_copies(created)
        raise
    return created


def undo_copies(created: list[Path]) -> None:
    """Remove what ``copy_picks`` created, newest first (folders only if empty: the user may have put files there)."""
    for path in reversed(created):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        except OSError:
            pass
