"""A labeling session on one image folder: the picks to label, the labels given, the rounds trained, the suspects.

Everything here is a call into the library: the picks are ``suggest``'s (``--strategy auto``, a cold start
without a run), written as ``picks.csv`` by ``select.rounds``; labels are the journaled moves of ``journal``;
a round is ``train`` in the background (``training``); the review after it is ``check-labels`` (``review``)
and the next picks ``suggest --from`` the new run; "done" is ``export`` and ``predict``. What the page sends is
checked in ``checks``. The web server only turns requests into these calls and their return values into JSON.

State lives in DATASET/.fewlabels-label/ (hidden: the reader never takes it for a class): the journal, the
lock, picks.csv, classes.json (classes added but not yet given a file), runs/round-NNN/ and export/.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

from fewlabels.app.checks import check_dataset, check_settings
from fewlabels.app.journal import Journal, check_class_name
from fewlabels.app.review import review_round
from fewlabels.app.training import Round, Settings
from fewlabels.data.folder import UNLABELED, training_root, tree_files
from fewlabels.errors import FewLabelsError
from fewlabels.select import rounds
from fewlabels.storage import RunFolder
from fewlabels.utils.io import atomic_write_json

PICKS = "picks.csv"
CLASSES = "classes.json"
RUNS = "runs"
EXPORT = "export"


class LabelSession:
    """See the module's docstring; every public method is one page action and returns plain data or raises
    ``FewLabelsError`` (one sentence for the page)."""

    def __init__(self, dataset: str | Path, run_dir: str | None = None, budget: int = 20, seed: int = 0) -> None:
        self.dataset = Path(dataset)
        self.root = training_root(self.dataset)
        self.journal = Journal(self.root)
        self.state_dir = self.journal.state
        self.budget, self.seed = budget, seed
        self.run_dir = run_dir  # the model picks and predictions come from (--from, then each finished round)
        self.picks: list[dict] = []
        self.picks_state, self.picks_note = "new", ""
        self.round: Round | None = None
        self.settings = Settings()
        self.review: dict = {}
        self._lock = threading.RLock()
        self._picker: threading.Thread | None = None  # the suggest call computing the next picks, if any

    # ---- opening

    def open(self, picks: bool = True) -> LabelSession:
        """Check the folder, take its lock, finish an open move, and start the picks (read back or suggested)."""
        check_dataset(self.dataset)
        self.journal.open()
        runs = self.rounds_on_disk()
        if runs:
            self.round = Round(runs[-1])
            if self.run_dir is None and self.round.finished:
                self.run_dir = str(self.round.out)
        if (self.state_dir / PICKS).is_file():
            self._read_picks()
        elif picks:
            self.refresh_picks()
        return self

    def close(self) -> None:
        if self.round is not None and self.round.running:
            self.round.stop()
            self.round.wait(120)
        self.journal.close()

    # ---- picks

    def _read_picks(self) -> None:
        with open(self.state_dir / PICKS, newline="", encoding="utf-8") as f:
            self.picks = list(csv.DictReader(f))
        self.picks_state = "ready"

    def refresh_picks(self, wait: bool = False) -> None:
        """Ask ``suggest`` for the next picks in the background (the page polls); the old picks stay until then."""
        with self._lock:
            running = self._picker if self.picks_state == "computing" else None
            if running is None:
                self.picks_state, self.picks_note = "computing", ""
                running = self._picker = threading.Thread(target=self._suggest, daemon=True)
                running.start()
        if wait:  # also for a computation another call started (open() starts one)
            running.join()

    def _suggest(self) -> None:
        from fewlabels.api import load
        from fewlabels.select.suggestion import suggest

        try:
            unlabeled = sum(1 for _ in (self.root / UNLABELED).rglob("*") if _.is_file() and not _.name.startswith("."))
            if unlabeled == 0:
                rows = []
            else:
                run = load(self.run_dir) if self.run_dir else None
                result = suggest(str(self.dataset), min(self.budget, unlabeled), "auto", run, self.seed,
                                 run_name=str(self.run_dir))
                rows = result.rows
                for row in rows:
                    row["sample"] = Path(row["sample"]).relative_to(self.root).as_posix()
            rounds.write_picks(self.state_dir / PICKS, rows)
            with self._lock:
                self.picks, self.picks_state = rows, "ready"
        except FewLabelsError as exc:
            with self._lock:
                self.picks_state, self.picks_note = "failed", str(exc)

    # ---- labels

    def classes(self) -> list[str]:
        """The class folders, then the classes added on the page that have no file yet."""
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and
                       p.name not in (UNLABELED,))
        added = self._added()
        return found + [c for c in added if c not in found]

    def _added(self) -> list[str]:
        path = self.state_dir / CLASSES
        if not path.is_file():
            return []
        try:
            added = json.loads(path.read_text(encoding="utf-8"))
            return [c for c in added if isinstance(c, str)]
        except ValueError:
            return []

    def add_class(self, name: str) -> list[str]:
        name = check_class_name(name)
        with self._lock:
            if name in self.classes():
                raise FewLabelsError(f"class '{name}' exists already.")
            atomic_write_json(self.state_dir / CLASSES, [*self._added(), name])
        return self.classes()

    def label(self, sample: str, cls: str) -> dict:
        return self.journal.label(sample, cls)

    def relabel(self, sample: str, cls: str) -> dict:
        return self.journal.relabel(sample, cls)

    def keep(self, sample: str) -> dict:
        return self.journal.keep(sample)

    def undo(self) -> dict:
        entry = self.journal.undo()
        if entry is None:
            raise FewLabelsError("nothing to undo: no label given on this page is left.")
        return entry

    def image(self, sample: str) -> Path:
        """The file of a sample, for the page to show (only images of this folder)."""
        path = self.journal.where(sample)
        if not path.is_file():
            raise FewLabelsError(f"{sample} is gone since it was suggested.")
        return path

    # ---- what the page shows

    def counts(self) -> dict:
        per_class, unlabeled = {}, 0
        for c in self.classes():
            folder = self.root / c
            per_class[c] = sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) \
                if folder.is_dir() else 0
        if (self.root / UNLABELED).is_dir():
            unlabeled = sum(1 for p in (self.root / UNLABELED).rglob("*") if p.is_file() and not p.name.startswith("."))
        return {"per_class": per_class, "unlabeled": unlabeled}

    def pick_rows(self) -> list[dict]:
        """The picks with where each is now: to label, labeled (and as what), or gone (moved behind the page's back)."""
        given = self.journal.labeled_by_page()
        out = []
        for row in self.picks:
            sample = row["sample"]
            if sample in given:
                status, cls = "labeled", given[sample]
            elif (self.root / sample).is_file():
                status, cls = "todo", ""
            else:
                status, cls = "gone", ""
            out.append({**{k: row.get(k, "") for k in ("rank", "sample", "strategy", "reason", "predicted", "confidence")},
                        "status": status, "label": cls})
        return out

    def rounds_on_disk(self) -> list[Path]:
        runs = self.state_dir / RUNS
        return sorted(p for p in runs.iterdir() if p.is_dir() and p.name.startswith("round-")) if runs.is_dir() else []

    def rounds(self) -> list[dict]:
        out = []
        for path in self.rounds_on_disk():
            results = RunFolder(path).results()
            acc = results.get("final_val_acc", results.get("test_accuracy"))
            out.append({"run": path.name, "labels": results.get("num_labeled"), "iterations": results.get("iterations"),
                        "accuracy": acc, "finished": bool(results)})
        return out

    def state(self) -> dict:
        with self._lock:
            training = self.round.progress() if self.round is not None else None
            if training and training["state"] == "finished" and self.review.get("run") != self.round.out.name:
                self._start_review()
            return {"dataset": str(self.dataset), "classes": self.classes(), "counts": self.counts(),
                    "picks": self.pick_rows(), "picks_state": self.picks_state, "picks_note": self.picks_note,
                    "model": Path(self.run_dir).name if self.run_dir else None, "settings": vars(self.settings),
                    "training": training, "review": self.review, "rounds": self.rounds(),
                    "reviewed": sorted(self.journal.reviewed())}

    # ---- training rounds

    def train(self, settings: dict) -> dict:
        """Start a round: ``train`` on the folder as it is now, in the background."""
        with self._lock:
            if self.round is not None and self.round.running:
                raise FewLabelsError("a round is training already; stop it or wait for it.")
            self.settings = check_settings(self.settings, settings)
            paths, labels, classes = tree_files(self.root)  # refuses fewer than two classes, in one sentence
            least = min(labels.count(i) for i in range(len(classes)))
            self.settings.val_per_class = 2 if least >= 10 else 1 if least >= 4 else 0  # held out where enough
            n = len(self.rounds_on_disk()) + 1
            self.round = Round(self.state_dir / RUNS / f"round-{n:03d}")
            self.round.start(self.dataset, self.settings, [p.relative_to(self.root).as_posix() for p in paths],
                             labels, classes)
            self.review = {}
            return self.round.progress()

    def stop(self) -> dict:
        with self._lock:
            if self.round is None or not self.round.running:
                raise FewLabelsError("no round is training.")
            self.round.stop()
            return self.round.progress()

    def resume(self) -> dict:
        with self._lock:
            if self.round is None or self.round.finished:
                raise FewLabelsError("no stopped round to resume; train a new one.")
            self.round.resume()
            return self.round.progress()

    def _start_review(self) -> None:
        """After a round: check-labels' suspects, per-class accuracy on its held-out labels, the next picks."""
        run = self.round.out
        self.review = {"run": run.name, "state": "computing"}
        self.run_dir = str(run)

        def work() -> None:
            review = review_round(run, self.dataset, self.root, self.seed)
            with self._lock:
                self.review = review
            self.refresh_picks()

        threading.Thread(target=work, daemon=True).start()

    # ---- done

    def export(self) -> dict:
        """The latest finished model as TorchScript and a CSV of its predictions for every image of the folder."""
        from fewlabels.api import load
        from fewlabels.evaluate.predictions import predict_inputs, write_predictions_csv
        from fewlabels.export import export
        from fewlabels.select.pool import folder_paths

        finished = [p for p in self.rounds_on_disk() if RunFolder(p).finished()]
        source = str(finished[-1]) if finished else self.run_dir
        if source is None:
            raise FewLabelsError("no model yet: train a round first.")
        trained = load(source)
        out = self.state_dir / EXPORT
        model = export(trained, out / "model.ts")
        paths, _, _ = folder_paths(self.root)
        predictions = predict_inputs(trained, [str(p) for p in paths])
        write_predictions_csv(out / "predictions.csv", predictions)
        return {"model": str(model), "predictions": str(out / "predictions.csv"), "run": Path(source).name,
                "rows": len(predictions.items)}
