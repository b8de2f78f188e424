"""A labeling round, coming back: the labels the user gave merged into the dataset (``merge-labels``).

Folders: ``merge-labels --dataset FOLDER --sorted DIR`` moves each original that the user sorted (its copy
in DIR/<class>/, mapped back through DIR/.fewlabels-copies.json, or by file name) from ``unlabeled/`` into
FOLDER/<class>/, where the next ``train`` or ``pipeline`` on FOLDER finds it labeled. Every move is planned
and checked first; a failure while applying (a full disk) moves back what was moved, so the dataset is merged
whole or not at all.

Arrays: ``merge-labels --dataset X.npz --labels picks.csv --out Y.npz`` writes the .npz with the rows whose
``label`` column the user filled labeled (Y may be X itself: the file is replaced whole, atomically).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from fewlabels.data.arrays import labels_to_int64, read_npz
from fewlabels.data.folder import RESERVED, UNLABELED, training_root
from fewlabels.errors import FewLabelsError
from fewlabels.select.rounds import MANIFEST
from fewlabels.utils import provenance
from fewlabels.utils.io import check_writable_dir, write_output


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
