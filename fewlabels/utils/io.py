"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fewlabels.errors import FewLabelsError


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    Missing parent folders are created (as ``train --out`` does), only now that there is something to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _default_mode())  # mkstemp's 0600 would make run files private
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None:  # name the file the user knows, not the temp
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def check_writable_dir(path: str | os.PathLike) -> None:
    """Fail early, before any work, if ``path`` cannot be created or written.

    Creates nothing: it looks for the nearest existing ancestor and checks it.
    """
    path = Path(path).absolute()
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # exists() is False for a link to nowhere, or a loop of links: mkdir would fail on it
            where = "is" if probe == path else f"passes through {probe},"
            raise FewLabelsError(f"Output path {path} {where} a symbolic link that leads nowhere (or to itself); "
                                 "choose another --out folder.")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FewLabelsError(f"Output path {path} is blocked by the file {probe}; choose another --out folder.")
    writable = os.access(probe, os.W_OK | os.X_OK)
    if writable:  # permissions can lie (root, read-only mounts, /proc): try a throwaway file
        try:
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError:
            writable = False
    if not writable:
        raise FewLabelsError(f"Output folder {path} is not writable (cannot write in {probe}); choose another --out folder.")


def check_replaceable(path: str | os.PathLike, overwrite: bool, flag: str = "--out", instead: str | None = None) -> None:
    """Refuse, before any work, an existing ``path`` unless fewlabels wrote it and ``overwrite`` allows replacing it.

    Whether fewlabels wrote it is read from the file itself (``provenance.recognise``): a file without the mark
    (the user's, a link, or one written before fewlabels marked its outputs) is never replaced, whatever the flags.
    ``instead`` says how to proceed other than by removing it (default: choose another ``flag``).
    """
    from fewlabels.utils import provenance

    path = Path(path)
    instead = instead or f"choose another {flag}"
    if not path.exists() and not path.is_symlink():
        return
    if not provenance.recognise(path):
        what = "a symbolic link" if path.is_symlink() else "a file fewlabels did not write (or wrote before it marked its outputs)"
        raise FewLabelsError(f"{path} already exists and is {what}, so it is kept; {instead} or remove it yourself.")
    if not overwrite:
        raise FewLabelsError(f"{path} already exists (written by fewlabels earlier); {instead} or pass --overwrite "
                             "to replace it.")


def write_output(path: str | os.PathLike, data: bytes | str, fmt: str) -> None:
    """A command's output file in ``fmt`` (see ``provenance.FORMATS``), stamped as fewlabels' own, written atomically.

    The caller checked the path before its work (``check_replaceable``); a file of the user's that appeared since is
    still not replaced.
    """
    from fewlabels.utils import provenance

    path = Path(path)
    if (path.exists() or path.is_symlink()) and not provenance.recognise(path):
        check_replaceable(path, True)
    atomic_write_bytes(path, provenance.stamp(fmt, data.encode("utf-8") if isinstance(data, str) else data))


def write_output_json(path: str | os.PathLike, obj: Any) -> None:
    """A command's JSON output (as ``atomic_write_json`` writes it), stamped as fewlabels' own."""
    write_output(path, json.dumps(obj, indent=2) + "\n", "json")
