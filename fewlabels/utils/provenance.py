"""Which files fewlabels wrote, decided from the file itself: ``stamp`` marks an output, ``recognise`` finds the mark.

``--overwrite`` may replace only a file fewlabels made (issue 27), and a file has no owner a command can ask,
so every output carries a mark its format allows without changing what readers see:

- JSON: a top-level key ``"written_by": "fewlabels"``;
- CSV: the header is the mark (picks.csv, check-labels' table, predict's table), so the file stays a plain table;
- .npz: a small array ``fewlabels`` (readers of X/y ignore other arrays);
- PNG: a ``tEXt`` chunk with the keyword ``fewlabels``;
- HTML: the comment ``<!-- written by fewlabels -->`` in its first line;
- TorchScript / ONNX: the ``fewlabels.json`` metadata ``export`` puts in both (an extra file / metadata_props).

Files written before marks existed carry none and count as the user's. This module imports nothing of
fewlabels, so any layer can stamp its writes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

MARK = "fewlabels"
JSON_KEY = "written_by"
HTML_MARK = "<!-- written by fewlabels -->"
MODEL_META = "fewlabels.json"  # export.META_FILE: TorchScript extra file / ONNX metadata_props key
NPZ_MEMBER = f"{MARK}.npy"
# the headers fewlabels' tables start with; (columns, True) when any p_<class> columns may follow
CSV_HEADERS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("rank", "sample", "strategy", "reason", "score", "predicted", "confidence", "copy", "label"), False),  # picks.csv
    (("rank", "sample", "given", "suspected", "score", "p_given", "flagged"), False),  # check-labels
    (("item", "class", "probability"), True),  # predict
)
FORMATS = ("json", "csv", "npz", "png", "html", "torchscript", "onnx")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEAD = 4096  # bytes read to find a mark at the start of a text file


def stamp(fmt: str, data: bytes) -> bytes:
    """``data`` (a whole output file in ``fmt``) with fewlabels' mark; a format whose bytes already hold it is checked."""
    if fmt == "json":
        obj = json.loads(data)
        return (json.dumps({**obj, JSON_KEY: MARK}, indent=2) + "\n").encode("utf-8")
    if fmt == "npz":
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as z:
            if NPZ_MEMBER not in z.namelist():
                arr = io.BytesIO()
                import numpy as np

                np.save(arr, np.array(MARK))
                z.writestr(NPZ_MEMBER, arr.getvalue())
        return buf.getvalue()
    if fmt == "png":
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("not a PNG")
        body = MARK.encode("latin-1") + b"\0" + b"written by fewlabels"
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        end_of_ihdr = len(PNG_SIGNATURE) + 8 + struct.unpack(">I", data[8:12])[0] + 4
        return data[:end_of_ihdr] + chunk + data[end_of_ihdr:]
    if fmt == "html":
        text = data.decode("utf-8")
        first, nl, rest = text.partition("\n")
        if first.lower().startswith("<!doctype"):  # the doctype stays first (standards mode)
            return f"{first} {HTML_MARK}{nl}{rest}".encode()
        return f"{HTML_MARK}\n{text}".encode()
    if fmt in ("csv", "torchscript", "onnx"):
        if not _recognise_bytes(io.BytesIO(data)):
            raise ValueError(f"this {fmt} lacks fewlabels' mark (its header or {MODEL_META})")
        return data
    raise ValueError(f"unknown format {fmt}; one of {', '.join(FORMATS)}")


def recognise(path: str | os.PathLike) -> bool:
    """True when the regular file at ``path`` carries fewlabels' mark; a link, a folder or an unreadable file is not."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            return _recognise_bytes(f)
    except (OSError, ValueError):
        return False


def _recognise_bytes(f) -> bool:
    head = f.read(_HEAD)
    f.seek(0)
    if head.startswith(PNG_SIGNATURE):
        return _png_marked(f)
    if head.startswith(b"PK"):
        return _zip_marked(f)
    text = head.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            obj = json.load(io.TextIOWrapper(f, encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(obj, dict) and obj.get(JSON_KEY) == MARK
    if HTML_MARK in text.partition("\n")[0]:
        return True
    if _csv_marked(text):
        return True
    return _onnx_marked(f)


def _csv_marked(text: str) -> bool:
    first = text.partition("\n")[0].rstrip("\r")
    try:
        columns = tuple(next(csv.reader([first])))
    except (csv.Error, StopIteration):
        return False
    for header, p_columns in CSV_HEADERS:
        if columns == header:
            return True
        if p_columns and columns[: len(header)] == header and all(c.startswith("p_") for c in columns[len(header):]):
            return True
    return False


def _png_marked(f) -> bool:
    f.seek(len(PNG_SIGNATURE))
    while True:
        head = f.read(8)
        if len(head) < 8:
            return False
        length, kind = struct.unpack(">I", head[:4])[0], head[4:]
        if kind == b"tEXt":
            body = f.read(length)
            if body.split(b"\0", 1)[0] == MARK.encode("latin-1"):
                return True
            f.seek(4, 1)
        elif kind in (b"IDAT", b"IEND"):  # fewlabels puts its mark before the image data
            return False
        else:
            f.seek(length + 4, 1)


def _zip_marked(f) -> bool:
    try:
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return NPZ_MEMBER in names or any(n.endswith(f"/extra/{MODEL_META}") for n in names)


def _varint(f) -> int | None:
    shift = value = 0
    while True:
        b = f.read(1)
        if not b:
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("not protobuf")


def _onnx_marked(f) -> bool:
    """ONNX is a protobuf ModelProto: walk its top-level fields for metadata_props (14) with key MODEL_META."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    try:
        while f.tell() < size:
            tag = _varint(f)
            if tag is None:
                return False
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                _varint(f)
            elif wire == 1:
                f.seek(8, 1)
            elif wire == 5:
                f.seek(4, 1)
            elif wire == 2:
                length = _varint(f)
                if length is None or f.tell() + length > size:
                    return False
                if field == 14 and length < 1 << 20:
                    entry = f.read(length)
                    if entry.startswith(b"\x0a" + bytes([len(MODEL_META)]) + MODEL_META.encode()):
                        return True
                else:
                    f.seek(length, 1)
            else:
                return False
    except ValueError:
        return False
    return False
