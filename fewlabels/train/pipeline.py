"""The few-label pipeline: self-supervised pretraining, semi-supervised fine-tuning from that encoder, distillation.

A pipeline owns no training code: each stage is an ordinary run folder under the pipeline's
folder, trained by ``train`` (or continued by ``resume``), handed the previous stage's folder
through ``init`` or the distillation teacher. ``pipeline.json`` records the stages' settings,
which ones finished, and which folder holds the final model; an interrupted pipeline continues
where it stopped (finished stages are skipped, the running one resumes exactly).

The defaults (``DEFAULT_STAGES``) follow SimCLRv2's recipe ("Big Self-Supervised Models are
Strong Semi-Supervised Learners"): pretrain without labels, fine-tune with the labels (here with
SoftMatch's consistency on the unlabeled pool too: unlike FixMatch's fixed threshold, its uniform
alignment and soft weights keep the classes a few labels leave close from collapsing into one),
distil the fine-tuned teacher into the final
model on the unlabeled pool. Their budgets are iterations, sized to about 15 minutes in all on a
2-core CPU; how they were chosen (on a validation split) is in bench/notes/pipeline.md.

From a foundation encoder (``default_stages(encoder=...)``, ``pipeline --encoder``) the stages are a head on the
encoder's embeddings (``1-teacher``) and its distillation into the student (``2-distill``): foundation/pipeline.py.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewlabels.data import DataSource
from fewlabels.errors import FewLabelsError
from fewlabels.foundation.pipeline import check_student, embed_images_for, load_encoders, write_embeddings
from fewlabels.foundation.teacher import EMBEDDINGS
from fewlabels.storage import RunFolder
from fewlabels.storage.manifest import MANIFEST, PIPELINE_FORMAT, read_manifest, write_manifest
from fewlabels.storage.replacing import replace, replaceable
from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import train
from fewlabels.train.preparation import prepare
from fewlabels.train.resuming import resume
from fewlabels.train.signals import TrainingInterrupted
from fewlabels.utils.io import check_writable_dir


@dataclass
class Stage:
    """One stage: its folder name and the settings it adds to the pipeline's common ones.

    ``init_from`` / ``teacher_from`` name an earlier stage whose folder is handed over; ``encoder`` (a foundation
    encoder's folder or hub id) makes the stage a run on that encoder's embeddings of the images (foundation/pipeline.py).
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    teacher_from: str | None = None
    encoder: str | None = None


DEFAULT_STAGES = (
    Stage("1-pretrain", {"algorithm": "simclr", "iterations": 700, "uratio": 4}),
    Stage("2-finetune", {"algorithm": "softmatch", "iterations": 1200}, init_from="1-pretrain"),
    Stage("3-distill", {"algorithm": "distill", "iterations": 1200}, teacher_from="2-finetune"),
)
STAGE_KEYS = {"pretrain": "1-pretrain", "finetune": "2-finetune", "distill": "3-distill"}
# From a foundation encoder (issue 30): a head on its embeddings is the teacher, distilled into the student
ENCODER_STAGES = (Stage("1-teacher", {"algorithm": "labelprop", "iterations": 1000, "model": None, "image_size": None}),
                  Stage("2-distill", {"algorithm": "distill", "iterations": 1200}, teacher_from="1-teacher"))
ENCODER_STAGE_KEYS = {"teacher": "1-teacher", "distill": "2-distill"}


def default_stages(overrides: dict[str, dict[str, Any]] | None = None, encoder: str | None = None) -> list[Stage]:
    """The default stages with per-stage setting overrides, by short name: {"pretrain": {"iterations": 300}}; with
    ``encoder``, the stages from that foundation encoder (teacher, distill) instead."""
    stages = [copy.deepcopy(s) for s in (DEFAULT_STAGES if encoder is None else ENCODER_STAGES)]
    keys = STAGE_KEYS if encoder is None else ENCODER_STAGE_KEYS
    if encoder is not None:
        stages[0].encoder = encoder
    by_key = {s.name: s for s in stages}
    for key, settings in (overrides or {}).items():
        if key not in keys:
            raise FewLabelsError(f"Unknown pipeline stage '{key}': the stages are {', '.join(keys)}.")
        stage = by_key[keys[key]]
        options = {**stage.settings.get("options", {}), **settings.get("options", {})}
        stage.settings.update(settings)
        if options:
            stage.settings["options"] = options
    return stages


def stage_configs(common: dict[str, Any], stages: list[Stage], out: Path) -> list[TrainConfig]:
    """Every stage's full configuration, checked before any stage starts (a typo must not cost a pretraining).

    Folders are the pipeline folder's own (``out/<stage>``), so a pipeline resumes from any working directory.
    """
    from fewlabels import algorithms, models

    configs: dict[str, TrainConfig] = {}
    embeds = {s.name for s in stages if s.encoder is not None}
    for stage in stages:
        given = {**common, **stage.settings}
        handed = ["out"] + (["init"] if stage.init_from else []) + (["options.teacher"] if stage.teacher_from else [])
        set_here = {**given, "options.teacher": (given.get("options") or {}).get("teacher")}
        taken = [k for k in handed if set_here.get(k) is not None]
        if taken:
            raise FewLabelsError(f"pipeline stage {stage.name}: '{taken[0]}' is the pipeline's to set (each stage's folder "
                                 "is <pipeline>/<stage>, handed to the next stage); leave it out.")
        settings = _with_folders(given, stage, out)
        try:
            config = TrainConfig.from_dict(settings)
            algorithms.get(config.algorithm, **config.options)  # unknown algorithms and options
            if config.model is not None:
                models.check_name(config.model)
            first = configs[stages[0].name] if configs else None
            for source, what in ((stage.init_from, "starts from"), (stage.teacher_from, "learns from")):
                earlier = configs.get(source) if source else None
                if source and earlier is None:
                    raise FewLabelsError(f"it {what} stage {source}, which does not come before it.")
                if source in embeds:  # the encoder's embeddings of this stage's images, at their own size
                    check_student(settings)
                    continue
                if earlier is not None and (earlier.dataset, earlier.data_dir) != (config.dataset, config.data_dir):
                    raise FewLabelsError(f"it {what} stage {source}, trained on {earlier.dataset}, but uses {config.dataset}.")
                sizes = [_as_run(c, first, "image_size") for c in (earlier, config) if c is not None]
                if len(set(sizes)) > 1:
                    texts = [f"{n} px" if n else "the data's own" for n in sizes]
                    raise FewLabelsError(f"it {what} stage {source}, whose image size is {texts[0]}, but its own is "
                                         f"{texts[1]}; give every stage the same (--image-size).")
            if stage.init_from:
                encoder, model = (_as_run(c, first, "model") for c in (configs[stage.init_from], config))
                if encoder != model:
                    names = [m or "(the data's default model)" for m in (encoder, model)]
                    raise FewLabelsError(f"it starts from stage {stage.init_from}'s {names[0]} encoder but trains a "
                                         f"{names[1]}; give both the same model.")
        except FewLabelsError as exc:
            raise FewLabelsError(f"pipeline stage {stage.name}: {exc}") from None
        configs[stage.name] = config
    return list(configs.values())


def _with_folders(settings: dict[str, Any], stage: Stage, out: Path) -> dict[str, Any]:
    """A stage's settings with the folders the pipeline gives it: its own, and the ones it starts from or learns from."""
    settings = {**settings, "out": str(out / stage.name)}
    if stage.encoder is not None:
        settings["dataset"] = str(out / EMBEDDINGS)
    if stage.init_from:
        settings["init"] = str(out / stage.init_from)
    if stage.teacher_from:
        settings["options"] = {**settings.get("options", {}), "teacher": str(out / stage.teacher_from)}
    return settings


DATA_DECIDED = ("model", "image_size", "labels_per_class")  # settings prepare() fills in from the data


def _as_run(config: TrainConfig, first: TrainConfig | None, name: str) -> Any:
    """A stage's setting as it will run: one left unset takes the first stage's (``run_pipeline`` hands it on)."""
    value = getattr(config, name)
    return getattr(first, name) if value is None and first is not None else value


def run_pipeline(common: dict[str, Any], out: str | os.PathLike, stages: list[Stage] | None = None,
                 source: DataSource | None = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run every stage from the start in a folder of its own.

    ``out`` must be new or empty; with ``overwrite`` what fewlabels wrote there (an earlier pipeline, a run) is
    replaced, and a folder holding anything else is refused (``storage.replacing.replaceable``), before any work.
    """
    out = Path(out).absolute()
    stages = list(stages) if stages is not None else default_stages()
    configs = stage_configs(common, stages, out)
    check_writable_dir(out)
    replaced = replaceable(out, overwrite)
    lead = next(i for i, s in enumerate(stages) if s.encoder is None)  # the first stage on the images themselves
    encoders = load_encoders(stages)  # a foundation encoder refuses before any data is read
    prepare(configs[lead], source, overwrite=True)  # the first stage's data, device and model, before anything is replaced
    for stage, config in zip(stages, configs):  # what the data decided for it (model, size, labels) holds for them all
        for name in DATA_DECIDED if stage.encoder is None else ("labels_per_class",):  # a head's model suits its embeddings
            if getattr(config, name) is None:
                setattr(config, name, getattr(configs[lead], name))
    embedded = embed_images_for(encoders, configs[lead], source, progress)  # in memory: nothing written yet
    said = replace(out, replaced)  # an earlier pipeline's stages must not pass for this one's
    if said:
        print(said, flush=True)
    record = {"format": PIPELINE_FORMAT, "common": common, "final_stage": None,
              "stages": [{"name": s.name, "init_from": s.init_from, "teacher_from": s.teacher_from, "config": c.to_dict(),
                          "status": "pending"} for s, c in zip(stages, configs)]}
    out.mkdir(parents=True, exist_ok=True)
    write_embeddings(out, record["stages"], embedded)  # and which encoder taught each stage, in its entry
    write_manifest(out, record)
    return _run_stages(out, record, configs, source, progress, fresh=True)


def resume_pipeline(out: str | os.PathLike, source: DataSource | None = None, progress: bool = True) -> dict[str, Any]:
    """Continue the pipeline in ``out``: finished stages are skipped, the interrupted one resumes exactly.

    The stages' folders are rebuilt from ``out`` (the manifest's own paths may come from another working
    directory, or the folder may have moved); a stage folder whose run is not the manifest's is refused.
    """
    out = Path(out).absolute()
    record = read_manifest(out)
    stages = [Stage(s["name"], {}, s.get("init_from"), s.get("teacher_from"), s.get("encoder")) for s in record["stages"]]
    configs = []
    for stage, entry in zip(stages, record["stages"]):
        try:
            configs.append(TrainConfig.from_dict(_with_folders(entry["config"], stage, out)))
        except FewLabelsError as exc:
            raise FewLabelsError(f"{out / MANIFEST}, stage {stage.name}: {exc}") from None
    for entry, config in zip(record["stages"], configs):
        folder = RunFolder(config.out)
        if folder.last.is_file():
            saved, planned = _own_settings(folder.checkpoint()["config"]), _own_settings(entry["config"])
            # None and "auto" are settings the run resolves itself (--tta auto is recorded as the mode it chose)
            differs = [k for k, v in planned.items() if v is not None and v != "auto" and saved.get(k) != v]
            if differs:
                k = differs[0]
                raise FewLabelsError(f"{folder.path} holds a run with {k}={saved.get(k)!r}, but this pipeline's stage has "
                                     f"{k}={planned[k]!r}; it is not this pipeline's stage (start it again with "
                                     "--overwrite).")
    return _run_stages(out, record, configs, source, progress, fresh=False)


def _own_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A stage's settings less the folders it is handed (they change when the pipeline moves)."""
    own = {k: v for k, v in config.items() if k not in ("out", "init")}
    own["options"] = {k: v for k, v in (config.get("options") or {}).items() if k != "teacher"}
    return own


def _run_stages(out: Path, record: dict, configs: list[TrainConfig], source: DataSource | None, progress: bool,
                fresh: bool) -> dict[str, Any]:
    for entry, config in zip(record["stages"], configs):
        folder = RunFolder(config.out)
        finished = folder.results() if not fresh and folder.path.is_dir() else {}
        if finished:  # done before (perhaps killed before the manifest said so): keep it
            entry.update(status="done", test_accuracy=finished.get("test_accuracy"), iterations=finished.get("iterations"),
                         wall_time_s=finished.get("wall_time_s"))
            continue
        if progress:
            print(f"pipeline stage {entry['name']}: {config.algorithm}, {config.iterations} iterations", flush=True)
        t0 = time.time()
        try:
            if folder.last.is_file() and not fresh:
                handed = {"init": config.init, "teacher": config.options.get("teacher"),
                          "dataset": config.dataset if entry.get("encoder") else None}
                results = resume(folder.path, progress=progress, moved={k: v for k, v in handed.items() if v})
            else:
                results = train(config, source=None if entry.get("encoder") else source, progress=progress, overwrite=True)
        except TrainingInterrupted as exc:
            raise TrainingInterrupted(exc.signum, exc.step, None, hint=f"in pipeline stage {entry['name']}, checkpoint "
                                      f"saved; continue with: fewlabels pipeline --resume {out}") from None
        entry.update(status="done", test_accuracy=results.get("test_accuracy"), iterations=results.get("iterations"),
                     wall_time_s=results.get("wall_time_s"), session_s=round(time.time() - t0, 1))
        write_manifest(out, record)
    record["final_stage"] = record["stages"][-1]["name"]
    write_manifest(out, record)
    return record


def summary_table(record: dict[str, Any]) -> str:
    """Each stage's final EMA test accuracy, wall time and iterations, and where the final model is."""
    lines = [f"{'stage':<12} {'algorithm':<12} {'iterations':>10} {'wall time':>10} {'test accuracy':>14}"]
    for s in record["stages"]:
        acc = s.get("test_accuracy")
        wall = s.get("wall_time_s")
        lines.append(f"{s['name']:<12} {s['config'].get('algorithm') or '-':<12} {s.get('iterations') or '-':>10} "
                     f"{(f'{wall / 60:.1f} min' if wall is not None else '-'):>10} "
                     f"{(f'{acc:.4f}' if acc is not None else '-'):>14}")
    if record.get("final_stage"):
        lines.append(f"final model: {record['final_stage']}")
    return "\n".join(lines)


def stage_rows(folder: str | os.PathLike) -> list[dict[str, str]]:
    """The stages of the pipeline in ``folder`` side by side, one report row each (none for a plain run folder).

    A finished stage's figures come from its own results.json (the manifest may not have caught up with a killed run).
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return []
    rows = []
    stages = read_manifest(folder)["stages"]
    encoders = any(s.get("encoder") for s in stages)  # an encoder pipeline's rows say which encoder taught a stage
    for s in stages:
        try:
            results = RunFolder(folder / s["name"]).results()
        except FewLabelsError:  # damaged: the manifest's figures, without the per-class ones
            results = {}
        figures = {k: results.get(k, s.get(k)) for k in ("test_accuracy", "wall_time_s", "iterations")}
        acc, wall = figures["test_accuracy"], figures["wall_time_s"]
        per_class = (results.get("test") or {}).get("per_class_accuracy") or {}
        worst = min(per_class, key=per_class.get) if per_class else None
        rows.append({"stage": s["name"], "method": s["config"].get("algorithm"), "model": s["config"].get("model"),
                     "iterations": figures["iterations"] or s["config"].get("iterations"),
                     "wall time": f"{wall / 60:.1f} min" if wall is not None else None,
                     "final EMA test accuracy": f"{acc:.4f}" if acc is not None else s.get("status"),
                     "worst class": f"{worst} {per_class[worst]:.4f}" if worst is not None else None,
                     **({"taught by": s.get("encoder")} if encoders else {})})
    return [{k: "-" if v is None else str(v) for k, v in row.items()} for row in rows]
