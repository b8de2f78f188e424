"""A labeling round: the picks as CSV, copied out to sort, and the new labels merged back into the dataset.

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
applying (a full disk) undoes what was done, so the dataset is merged whole or not at all.

Arrays: picks.csv names rows; the user fills its ``label`` column (a class index or name) and
``merge-labels --dataset X.npz --labels picks.csv --out Y.npz`` writes the .npz with those rows
labeled (Y may be X itself: the file is replaced whole, atomically).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from fewlabels.data.arrays import labels_to_int64, read_npz
from fewlabels.data.folder import RESERVED, TRAIN, UNLABELED, training_root
from fewlabels.errors import FewLabelsError
from fewlabels.utils import provenance
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


def _read_manifest(sorted_dir: Path) -> dict[str, str]:
    """The copy name -> path under unlabeled/ that suggest wrote; {} for a folder sorted without one."""
    path = sorted_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        copies = json.loads(path.read_text(encoding="utf-8"))["copies"]
        ok = isinstance(copies, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in copies.items())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok = False
    if not ok or any(Path(v).is_absolute() or ".." in Path(v).parts or not v for v in copies.values()):
        raise FewLabelsError(f"{path} is damaged (it maps the copies back to their originals); restore it or remove it "
                             "to match copies by file name.")
    return copies


def plan_merge(dataset: str | os.PathLike, sorted_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Every move ``merge_sorted`` will make, (original, destination), after checking all of them: nothing is moved
    here, and any problem is refused before the first move."""
    root = training_root(Path(dataset))
    unlabeled, sorted_dir = root / UNLABELED, Path(sorted_dir)
    if not unlabeled.is_dir():
        raise FewLabelsError(f"{root} has no {UNLABELED}/ folder to take the sorted samples from.")
    if not sorted_dir.is_dir():
        raise FewLabelsError(f"--sorted {sorted_dir} is not a folder; give the --copy-to folder you sorted.")
    copies = _read_manifest(sorted_dir)
    placed: dict[Path, Path] = {}  # original -> the sorted copy that says where it goes
    moves = []
    for class_dir in sorted(p for p in sorted_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if class_dir.name == UNLABELED:  # left unsorted on purpose
            continue
        if class_dir.name in RESERVED:
            raise FewLabelsError(f"{class_dir} cannot be a class: the image-folder reader gives '{class_dir.name}' a "
                                 f"meaning of its own ({', '.join(RESERVED)}); rename the folder.")
        if (root / class_dir.name).exists() and not (root / class_dir.name).is_dir():
            raise FewLabelsError(f"{root / class_dir.name} is a file, so class {class_dir.name} has no folder to go to; "
                                 "move the file away or rename the class.")
        for f in sorted(q for q in class_dir.iterdir() if not q.name.startswith(".")):
            if f.is_dir():
                raise FewLabelsError(f"{f} is a folder; put the copies directly in {class_dir}/.")
            rel = Path(copies.get(f.name, f.name))
            src, dst = unlabeled / rel, root / class_dir.name / rel
            if src in placed:
                raise FewLabelsError(f"{src} is sorted into two classes, {placed[src].parent.name} ({placed[src]}) and "
                                     f"{class_dir.name} ({f}); keep its copy in one class folder.")
            if not src.is_file():
                raise FewLabelsError(f"{f} has no original {src}; was it labeled already, or copied from elsewhere?")
            if os.path.lexists(dst):
                raise FewLabelsError(f"{dst} exists already; rename {f} or remove the duplicate.")
            placed[src] = f
            moves.append((src, dst))
    if not moves:
        raise FewLabelsError(f"{sorted_dir} has no files in class subfolders; sort the copies into "
                             f"{sorted_dir}/<class>/ first.")
    for folder in sorted({src.parent for src, _ in moves} | {dst.parent for _, dst in moves}):
        check_writable_dir(folder)
    return moves


def apply_moves(moves: list[tuple[Path, Path]]) -> None:
    """Make planned moves; if one fails, move back those already made and remove the folders made for them."""
    done: list[tuple[Path, Path]] = []
    made: list[Path] = []
    try:
        for src, dst in moves:
            for folder in reversed([dst.parent, *dst.parent.parents]):
                if not folder.exists():
                    folder.mkdir()
                    made.append(folder)
            os.replace(src, dst)
            done.append((src, dst))
    except BaseException:
        for src, dst in reversed(done):
            os.replace(dst, src)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def merge_sorted(dataset: str | os.PathLike, sorted_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Move each file of ``dataset/unlabeled`` that the user sorted into ``sorted_dir/<class>/`` to ``dataset/<class>/``:
    all of them after checking all of them, or none."""
    moves = plan_merge(dataset, sorted_dir)
    apply_moves(moves)
    return moves


def read_labels(path: str | os.PathLike, classes: list[str], n: int) -> dict[int, int]:
    """Row -> class index from a picks CSV whose ``label`` column the user filled (blank rows are skipped).

    A row given twice must be given the same class: which of two would be meant cannot be guessed.
    """
    path = Path(path)
    if path.is_dir():
        raise FewLabelsError(f"--labels {path} is a folder; give the picks.csv whose label column you filled.")
    if not path.is_file():
        raise FewLabelsError(f"--labels {path} does not exist; give the picks.csv whose label column you filled.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "sample" not in reader.fieldnames or "label" not in reader.fieldnames:
                raise FewLabelsError(f"{path} needs 'sample' and 'label' columns, as suggest writes them.")
            rows = list(reader)
    except UnicodeDecodeError:
        raise FewLabelsError(f"{path} is not text (not UTF-8); save picks.csv as UTF-8 CSV.") from None
    except csv.Error as exc:
        raise FewLabelsError(f"{path} is not a readable CSV ({exc}); save picks.csv as plain CSV.") from None
    out: dict[int, int] = {}
    first_line: dict[int, int] = {}
    for line, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if not label:
            continue
        try:
            i = int(row["sample"] or "")
        except ValueError:
            raise FewLabelsError(f"{path} line {line}: sample '{row['sample']}' is not a row index.") from None
        if not 0 <= i < n:
            raise FewLabelsError(f"{path} line {line}: row {i} is outside the dataset's {n} rows.")
        if label in classes:
            c = classes.index(label)
        elif label.lstrip("-").isdigit() and 0 <= int(label) < len(classes):
            c = int(label)
        else:
            raise FewLabelsError(f"{path} line {line}: label '{label}' is not one of the classes "
                                 f"({', '.join(classes[:10])}) nor a class index.")
        if i in out and out[i] != c:
            raise FewLabelsError(f"{path} labels row {i} twice, '{classes[out[i]]}' on line {first_line[i]} and "
                                 f"'{classes[c]}' on line {line}; keep one.")
        out[i] = c
        first_line.setdefault(i, line)
    if not out:
        raise FewLabelsError(f"{path} has no filled label; write each pick's class in its label column first.")
    return out


def merge_npz(dataset: str | os.PathLike, labels_csv: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write ``out``: the .npz ``dataset`` with the rows of ``labels_csv`` labeled. Returns how many rows."""
    dataset = Path(dataset)
    arrays = read_npz(dataset)
    if "y" not in arrays or "X" not in arrays:
        raise FewLabelsError(f"{dataset} needs arrays X and y (-1 unlabeled).")
    classes = [str(c) for c in np.ravel(arrays["classes"])] if "classes" in arrays else None
    rows = len(arrays["X"]) if arrays["X"].ndim else 0
    try:  # train's own check of y: whole class indices, -1 unlabeled, one per row of X
        y = labels_to_int64(arrays["y"], rows, len(classes) if classes is not None else None).numpy().copy()
    except FewLabelsError as exc:
        raise FewLabelsError(f"{dataset}: {exc}") from None
    if classes is None:
        classes = [str(c) for c in range(int(y.max(initial=-1)) + 1)]
    given = read_labels(labels_csv, classes, len(y))
    check_writable_dir(Path(out).parent)
    for i, c in given.items():
        y[i] = c
    arrays["y"] = y
    arrays.pop(provenance.MARK, None)  # an input fewlabels wrote (embed's): the output gets a mark of its own
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_output(out, buf.getvalue(), "npz")
    return len(given)
