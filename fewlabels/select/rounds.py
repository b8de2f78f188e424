"""A labeling round: the picks as CSV, copied out to sort, and the new labels merged back into the dataset.

Folders: ``suggest --copy-to DIR`` copies (or links) each picked file from the dataset's
``unlabeled/`` into DIR, with an empty DIR/<class>/ per known class; the user moves each copy into
its class subfolder (new class names are fine); ``merge-labels --dataset FOLDER --sorted DIR``
then moves the originals from ``unlabeled/`` into FOLDER/<class>/, where the next ``train`` or
``pipeline`` on FOLDER finds them labeled.

Arrays: picks.csv names rows; the user fills its ``label`` column (a class index or name) and
``merge-labels --dataset X.npz --labels picks.csv --out Y.npz`` writes the .npz with those rows
labeled (Y may be X itself: the file is replaced whole, atomically).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np

from fewlabels.data.arrays import read_npz
from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import atomic_write_bytes, atomic_write_text, check_writable_dir

CSV_COLUMNS = ("rank", "sample", "strategy", "reason", "score", "predicted", "confidence", "label")


def picks_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    return buf.getvalue()


def write_picks(path: str | os.PathLike, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, picks_csv(rows))


def check_copy_to(target: str | os.PathLike, root: Path | None, kind: str) -> Path:
    """Refuse, before any work, a --copy-to folder for non-folder data, inside the dataset, or not writable."""
    target = Path(target)
    if kind != "folder" or root is None:
        raise FewLabelsError("--copy-to works on image folders; for arrays fill picks.csv's label column and run "
                             "fewlabels merge-labels.")
    dataset = (root.parent if root.name == "train" else root).resolve()
    where = target.resolve()
    if where == dataset or dataset in where.parents:
        raise FewLabelsError(f"--copy-to {target} is inside the dataset {dataset}, where the copies would be read as "
                             "data; choose a folder outside it.")
    if target.exists() and not target.is_dir():
        raise FewLabelsError(f"--copy-to {target} is a file; give a folder.")
    if target.is_dir() and any(target.iterdir()):
        raise FewLabelsError(f"--copy-to {target} is not empty; give a new or empty folder.")
    check_writable_dir(target)
    return target


def copy_picks(paths: list[str], target: Path, classes: list[str], link: bool = False) -> None:
    """Copy (or symlink) each picked file into ``target``, plus an empty subfolder per known class."""
    target.mkdir(parents=True, exist_ok=True)
    for c in classes:
        (target / c).mkdir(exist_ok=True)
    for p in paths:
        src = Path(p)
        if link:
            (target / src.name).symlink_to(src.resolve())
        else:
            shutil.copy2(src, target / src.name)


def merge_sorted(dataset: str | os.PathLike, sorted_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Move each file of ``dataset/unlabeled`` that the user sorted into ``sorted_dir/<class>/`` to ``dataset/<class>/``."""
    from fewlabels.data.folder import UNLABELED

    root = Path(dataset)
    if (root / "train").is_dir() and (root / "test").is_dir():
        root = root / "train"
    unlabeled, sorted_dir = root / UNLABELED, Path(sorted_dir)
    if not unlabeled.is_dir():
        raise FewLabelsError(f"{root} has no {UNLABELED}/ folder to take the sorted samples from.")
    if not sorted_dir.is_dir():
        raise FewLabelsError(f"--sorted {sorted_dir} is not a folder; give the --copy-to folder you sorted.")
    moves = []
    for class_dir in sorted(p for p in sorted_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if class_dir.name == UNLABELED:
            continue
        for f in sorted(q for q in class_dir.iterdir() if not q.name.startswith(".")):
            src, dst = unlabeled / f.name, root / class_dir.name / f.name
            if not src.is_file():
                raise FewLabelsError(f"{f} has no original {src}; was it labeled already, or copied from elsewhere?")
            if dst.exists():
                raise FewLabelsError(f"{dst} exists already; rename {f} or remove the duplicate.")
            moves.append((src, dst))
    if not moves:
        raise FewLabelsError(f"{sorted_dir} has no files in class subfolders; sort the copies into "
                             f"{sorted_dir}/<class>/ first.")
    check_writable_dir(root)
    for src, dst in moves:
        dst.parent.mkdir(exist_ok=True)
        os.replace(src, dst)
    return moves


def read_labels(path: str | os.PathLike, classes: list[str], n: int) -> dict[int, int]:
    """Row -> class index from a picks CSV whose ``label`` column the user filled (blank rows are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FewLabelsError(f"--labels {path} does not exist; give the picks.csv whose label column you filled.")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "sample" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise FewLabelsError(f"{path} needs 'sample' and 'label' columns, as suggest writes them.")
        rows = list(reader)
    out: dict[int, int] = {}
    for line, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if not label:
            continue
        try:
            i = int(row["sample"])
        except ValueError:
            raise FewLabelsError(f"{path} line {line}: sample '{row['sample']}' is not a row index.") from None
        if not 0 <= i < n:
            raise FewLabelsError(f"{path} line {line}: row {i} is outside the dataset's {n} rows.")
        if label in classes:
            out[i] = classes.index(label)
        elif label.lstrip("-").isdigit() and 0 <= int(label) < len(classes):
            out[i] = int(label)
        else:
            raise FewLabelsError(f"{path} line {line}: label '{label}' is not one of the classes "
                                 f"({', '.join(classes[:10])}) nor a class index.")
    if not out:
        raise FewLabelsError(f"{path} has no filled label; write each pick's class in its label column first.")
    return out


def merge_npz(dataset: str | os.PathLike, labels_csv: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write ``out``: the .npz ``dataset`` with the rows of ``labels_csv`` labeled. Returns how many rows."""
    dataset = Path(dataset)
    arrays = read_npz(dataset)
    if "y" not in arrays or "X" not in arrays:
        raise FewLabelsError(f"{dataset} needs arrays X and y (-1 unlabeled).")
    y = arrays["y"].astype(np.int64)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(c) for c in range(int(y.max()) + 1)]
    given = read_labels(labels_csv, classes, len(y))
    check_writable_dir(Path(out).parent)
    for i, c in given.items():
        y[i] = c
    arrays["y"] = y
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(out, buf.getvalue())
    return len(given)
