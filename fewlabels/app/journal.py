"""Labels written from the page: each one a journaled, atomic move of one file, so undo and crash recovery are exact.

A label moves ``unlabeled/<path>`` to ``<class>/<path>`` (as ``merge-labels`` does, through ``merge.apply_moves``);
a relabel moves ``<class>/<path>`` to ``<other>/<path>``; an undo moves the file back. Every move is first written
to ``journal.jsonl`` (flushed and fsynced), then made, then marked done. After a crash (``kill -9``, a power cut)
at most the last move is open; ``recover`` finishes it if its file is still where it started, so the folder is
what the journal says. Moves already marked done are never replayed: a file the user moved by hand afterwards
stays where they put it.

One ``Journal`` per dataset at a time: it holds an exclusive lock file for its life (a second server on the same
folder is refused in one sentence), and a thread lock serialises the requests of several tabs.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from fewlabels.data.folder import IMAGE_SUFFIXES, RESERVED, UNLABELED
from fewlabels.errors import FewLabelsError
from fewlabels.select.merge import apply_moves
from fewlabels.utils.io import check_writable_dir

STATE = ".fewlabels-label"  # hidden, so the image-folder reader never takes it for a class
JOURNAL = "journal.jsonl"
LOCK = "lock"
MAX_CLASS_NAME = 100


def check_class_name(name: str) -> str:
    """A class name that is a plain folder name the image-folder reader takes as a class, or one sentence why not."""
    if not isinstance(name, str) or not name.strip():
        raise FewLabelsError("a class name cannot be empty; type a name such as 'cat'.")
    if name != name.strip():
        raise FewLabelsError(f"class name '{name}' starts or ends with a space; remove it.")
    if len(name) > MAX_CLASS_NAME:
        raise FewLabelsError(f"class name '{name[:20]}...' is longer than {MAX_CLASS_NAME} characters; shorten it.")
    if any(ch in name for ch in "/\\\0") or any(ord(ch) < 32 for ch in name):
        raise FewLabelsError(f"class name '{name}' holds a slash or a control character; a class is one folder name.")
    if name.startswith("."):
        raise FewLabelsError(f"class name '{name}' starts with a dot, so the reader would skip its folder; rename it.")
    if name in RESERVED:
        raise FewLabelsError(f"'{name}' cannot be a class: the image-folder reader gives it a meaning of its own "
                             f"({', '.join(RESERVED)}); choose another name.")
    return name


class Journal:
    """The labeling journal of one image folder (its training root), with its lock; see the module's docstring."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.state = self.root / STATE
        self.path = self.state / JOURNAL
        self._thread_lock = threading.Lock()
        self._lock_file = None
        self.entries: list[dict] = []

    # ---- opening: the lock, the journal read back, the open move finished

    def open(self) -> Journal:
        """Take the folder's lock, read the journal and finish a move a crash left open; refuse in one sentence."""
        check_writable_dir(self.root)
        self.state.mkdir(exist_ok=True)
        self._lock_file = open(self.state / LOCK, "a+")  # noqa: SIM115 (held for the Journal's life)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise FewLabelsError(f"another fewlabels label is serving {self.root}; use its page (or stop it) so two "
                                 "servers never move the same files.") from None
        self.entries = self._read()
        self.recover()
        return self

    def close(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        entries = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                if n == len(lines):  # a line cut by the crash itself: its move was never made
                    break
                raise FewLabelsError(f"{self.path} line {n} is damaged; restore it, or move it away to start a new "
                                     "journal (the labels already in class folders stay).") from None
        return entries

    def _append(self, entry: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.append(entry)

    def recover(self) -> list[dict]:
        """Finish the moves written but not marked done (a crash between the two); returns those finished."""
        done = {e["done"] for e in self.entries if "done" in e}
        finished = []
        for e in self.entries:
            if "id" not in e or e["id"] in done:
                continue
            src, dst = self.root / e["src"], self.root / e["dst"]
            if src.is_file() and not os.path.lexists(dst):
                apply_moves([(src, dst)])
                finished.append(e)
            if src.is_file() or dst.is_file():
                self._append({"done": e["id"]})
            if e["op"] == "undo":
                self._remove_if_empty(src.parent)
        return finished

    # ---- the moves

    def _move(self, op: str, src: Path, dst: Path, **extra) -> dict:
        """Journal, move, mark done: the one way a file moves (the lock held by the caller)."""
        entry = {"id": 1 + max((e.get("id", 0) for e in self.entries), default=0), "op": op,
                 "src": src.relative_to(self.root).as_posix(), "dst": dst.relative_to(self.root).as_posix(), **extra}
        self._append(entry)
        try:
            apply_moves([(src, dst)])
        except BaseException:
            self._append({"done": entry["id"], "failed": True})
            raise
        self._append({"done": entry["id"]})
        return entry

    def _check_move(self, src: Path, dst: Path, seen: str) -> None:
        if not src.is_file():
            raise FewLabelsError(f"{src.relative_to(self.root)} is gone since it was {seen} (moved or labeled elsewhere); "
                                 "nothing was changed.")
        if os.path.lexists(dst):
            raise FewLabelsError(f"{dst.relative_to(self.root)} exists already; nothing was changed, rename or remove "
                                 "one of the two files.")
        if dst.parent.exists() and not dst.parent.is_dir():
            raise FewLabelsError(f"{dst.parent.relative_to(self.root)} is a file, so the class has no folder; move the "
                                 "file away or choose another class.")
        check_writable_dir(src.parent)
        check_writable_dir(dst.parent)

    def where(self, sample: str | os.PathLike) -> Path:
        """A sample's path inside the folder (refused when it points outside it, or is no image)."""
        path = Path(sample)
        path = path if path.is_absolute() else self.root / path
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            raise FewLabelsError(f"{sample} is not inside {self.root}.") from None
        if ".." in rel.parts or not rel.parts or rel.parts[0].startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise FewLabelsError(f"{sample} is not an image of {self.root}.")
        return path

    def label(self, sample: str | os.PathLike, cls: str) -> dict:
        """Move an unlabeled sample into ``cls``'s folder (made if new)."""
        cls = check_class_name(cls)
        with self._thread_lock:
            src = self.where(sample)
            rel = src.relative_to(self.root)
            if rel.parts[0] != UNLABELED:
                raise FewLabelsError(f"{rel} is labeled already (in {rel.parts[0]}/); relabel it from the suspects "
                                     "instead, nothing was changed.")
            dst = self.root / cls / Path(*rel.parts[1:])
            self._check_move(src, dst, "suggested")
            return self._move("label", src, dst, cls=cls)

    def relabel(self, sample: str | os.PathLike, cls: str) -> dict:
        """Move a labeled sample into another class's folder (a suspect whose label was wrong)."""
        cls = check_class_name(cls)
        with self._thread_lock:
            src = self.where(sample)
            rel = src.relative_to(self.root)
            if rel.parts[0] == UNLABELED or len(rel.parts) < 2:
                raise FewLabelsError(f"{rel} has no label to change; label it instead.")
            if rel.parts[0] == cls:
                raise FewLabelsError(f"{rel} is in {cls} already; nothing was changed.")
            dst = self.root / cls / Path(*rel.parts[1:])
            self._check_move(src, dst, "checked")
            entry = self._move("relabel", src, dst, cls=cls)
            self._remove_if_empty(src.parent)
            return entry

    def keep(self, sample: str | os.PathLike) -> dict:
        """Record that a suspect's label was looked at and kept (no file moves)."""
        with self._thread_lock:
            path = self.where(sample)
            if not path.is_file():
                raise FewLabelsError(f"{path.relative_to(self.root)} is gone since it was checked; nothing was changed.")
            entry = {"op": "keep", "sample": path.relative_to(self.root).as_posix()}
            self._append(entry)
            return entry

    def undo(self) -> dict | None:
        """Move back the newest label or relabel not undone yet; None when there is none."""
        with self._thread_lock:
            undone = {e["of"] for e in self.entries if e.get("op") == "undo"}
            failed = {e["done"] for e in self.entries if e.get("failed")}
            last = next((e for e in reversed(self.entries) if e.get("op") in ("label", "relabel")
                         and e["id"] not in undone and e["id"] not in failed), None)
            if last is None:
                return None
            src, dst = self.root / last["dst"], self.root / last["src"]
            self._check_move(src, dst, "labeled")
            entry = self._move("undo", src, dst, of=last["id"], cls=last["cls"])
            self._remove_if_empty(src.parent)
            return entry

    def _remove_if_empty(self, folder: Path) -> None:
        """A class folder the last move emptied goes (train refuses an empty class folder); never the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or not ours to remove
                return
            folder = folder.parent

    # ---- reading

    def labeled_by_page(self) -> dict[str, str]:
        """Original path under unlabeled/ -> class, for the labels given here and not undone."""
        undone = {e["of"] for e in self.entries if e.get("op") == "undo"}
        failed = {e["done"] for e in self.entries if e.get("failed")}
        out: dict[str, str] = {}
        for e in self.entries:
            if e.get("op") == "label" and e["id"] not in undone and e["id"] not in failed:
                out[e["src"]] = e["cls"]
            elif e.get("op") == "undo":
                out.pop(e["dst"], None)
        return out

    def reviewed(self) -> set[str]:
        """Samples whose suspect label was kept or relabeled here (their current path)."""
        return {e["sample"] for e in self.entries if e.get("op") == "keep"} | \
            {e["dst"] for e in self.entries if e.get("op") == "relabel"}
