"""Continuing a run from its folder: the checkpoint checked against config.yaml and the data, then the same loop."""

from __future__ import annotations

import os
from pathlib import Path

from fewlabels.data import DataSource
from fewlabels.errors import FewLabelsError
from fewlabels.storage import RunFolder, check_resumable, read_checkpoint
from fewlabels.train.config import TrainConfig
from fewlabels.train.loop import Trainer
from fewlabels.train.preparation import prepare


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint of a run folder (or a checkpoint file), checked whole; see ``RunFolder.checkpoint``."""
    path = Path(path)
    if path.is_dir():
        return RunFolder(path).checkpoint()
    return read_checkpoint(path)


def resume(run_dir: str | os.PathLike, progress: bool = True, moved: dict[str, str] | None = None) -> dict:
    """Continue the run in ``run_dir`` from its last checkpoint, with the run's own configuration.

    A finished run (its last step checkpointed and results.json written) is left as it is: its results come back
    with ``already_finished: True`` and nothing is trained or written. ``moved``: where the folders the run names
    (``init``, ``dataset``, ``teacher``) are now, for a run that moved together with them (a pipeline's stages).
    """
    folder = RunFolder(run_dir)
    if folder.path.is_file():
        raise FewLabelsError(f"--resume needs a run folder, got the file {folder.path}.")
    ckpt = folder.checkpoint()
    results = folder.results()
    if results and int(ckpt["step"]) >= int(ckpt["config"].get("iterations", 0)):
        return {**results, "already_finished": True}
    check_resumable(ckpt, folder.source)
    config = saved_config(ckpt, moved)
    config.out = str(folder.path)
    folder.remove_strays()
    trainer = restored_trainer(config, ckpt, folder.source, progress)
    if folder.config_on_disk() is None:  # the run stopped between its first checkpoint and config.yaml
        folder.write_config(ckpt["config"])
    if folder.source != folder.last:  # last.pt was damaged: it points at the intact checkpoint resumed from
        folder.point_last(folder.source)
    return trainer.run(resumed=True)


def saved_config(ckpt: dict, moved: dict[str, str] | None = None) -> TrainConfig:
    """The configuration a checkpoint was trained with, its ``out`` unset; ``moved`` as in ``resume``."""
    saved = {"augment": "hand", **ckpt["config"]}  # runs from before --augment: as they were
    moved = moved or {}
    if "init" in moved:
        saved["init"] = moved["init"]
    if "dataset" in moved:  # an encoder pipeline's embeddings, beside its stages
        saved["dataset"] = moved["dataset"]
    if "teacher" in moved:
        saved["options"] = {**(saved.get("options") or {}), "teacher": moved["teacher"]}
    config = TrainConfig.from_dict(saved)
    config.out = None
    return config


def restored_trainer(config: TrainConfig, ckpt: dict, source_name: str | os.PathLike, progress: bool = False,
                     data: DataSource | None = None) -> Trainer:
    """A Trainer for ``config`` with ``ckpt`` restored into it: the one way a run (or a bench) picks a run up again.

    Refused in one sentence when the data or the model no longer fit the checkpoint (``source_name``: the
    checkpoint file named in that sentence). ``data``: the loaded data to reuse (a bench restoring many runs).
    """
    trainer = Trainer(prepare(config, source=data, overwrite=True), progress, restoring=True)
    if list(trainer.classes) != list(ckpt["classes"]) or list(trainer.train_x.shape[1:]) != list(ckpt["sample_shape"]):
        raise FewLabelsError(f"{source_name} was trained on data with classes {ckpt['classes']} and sample shape "
                             f"{tuple(ckpt['sample_shape'])}, but {config.dataset} now gives {trainer.classes} and "
                             f"{tuple(trainer.train_x.shape[1:])}; resume with the same data.")
    try:
        trainer.restore(ckpt)
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise FewLabelsError(f"{source_name} does not fit model '{config.model}' ({first[:160]}).") from None
    return trainer
