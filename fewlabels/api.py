"""The Python API: ``fit`` a classifier from a few labels; the ``Run`` it returns predicts and saves; ``load`` reads it back.

    import fewlabels
    run = fewlabels.fit(X, y, iterations=500, options={"threshold": 0.9})  # y == -1 marks unlabeled rows
    run.predict(X_new); run.save("model.pt"); fewlabels.load("model.pt").predict_proba(X_new)

``fit`` is a thin layer over ``fewlabels.train`` (the same loop as the CLI), so a model
from the API, the CLI or the scikit-learn estimator is the same kind of object.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fewlabels import algorithms
from fewlabels.data import Dataset, DataSource
from fewlabels.data.given import given_source, given_test_set
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, Trainer, prepare
from fewlabels.trained import Run, load

# TrainConfig fields that fit() sets from its own arguments; the rest may come in as keywords (**settings).
_SET_BY_FIT = ("dataset", "labels_per_class", "num_labels", "seed", "algorithm", "options", "model", "iterations", "out")

DataLike = str | os.PathLike | DataSource | Dataset | np.ndarray | torch.Tensor | Sequence


# ---- fit


def _settings(algorithm: str, settings: dict[str, Any], options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """fit()'s keywords as TrainConfig fields, and ``options`` as the algorithm's hyper-parameters; refuse the rest.

    Keywords are training settings only, so a name both may have (FreeMatch's ``momentum``, DASO's
    ``ema_decay``) never collides: the keyword sets the optimizer's or the loop's, ``options`` the algorithm's
    (a keyword of such a name, without the same name in ``options``, warns in one sentence that shows both).
    """
    settable = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SET_BY_FIT]
    algo_valid = list(algorithms.options(algorithm))  # refuses an unknown algorithm, with the closest name
    config_kw = {}
    for key, value in settings.items():
        value = _item(value)  # np.float32(0.1), np.int64 from np.arange grids
        if key in settable:
            config_kw[key] = value
            if key in algo_valid and key not in (options or {}):  # the old keyword form meant the algorithm's, maybe
                warnings.warn(f"{key}={value!r} sets the training setting {key}; {algorithm}'s own {key} goes in "
                              f"options={{{key!r}: {value!r}}}.", UserWarning, stacklevel=3)
        elif key in algo_valid:
            raise FewLabelsError(f"{key} is an option of {algorithm}: pass options={{{key!r}: {value!r}}}.")
        elif key in _SET_BY_FIT:
            raise FewLabelsError(f"'{key}' is set by fit() itself (from data or its own argument); do not pass it as a keyword.")
        else:
            close = difflib.get_close_matches(key, algo_valid + settable, n=1)
            if close and close[0] in algo_valid:
                hint = f"did you mean options={{{close[0]!r}: {value!r}}} (an option of {algorithm})?"
            else:
                hint = f"did you mean '{close[0]}'?" if close else f"training settings are {', '.join(settable)}."
            raise FewLabelsError(f"fit() has no setting '{key}': {hint}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise FewLabelsError(f"options must be a dict of {algorithm}'s hyper-parameters, e.g. options={{'threshold': 0.9}}; "
                             f"got a {type(options).__name__}.")
    algo_kw = {}
    for key, value in options.items():
        if key not in algo_valid and key in settable:
            raise FewLabelsError(f"{key} is a training setting, not an option of {algorithm}: pass {key}={_item(value)!r} to fit().")
        algo_kw[key] = _item(value)
    return config_kw, algo_kw


def _item(value: Any) -> Any:
    """A NumPy scalar as the Python number the training config checks for."""
    return value.item() if isinstance(value, np.generic) else value


def fit(
    data: DataLike,
    y: Any = None,
    *,
    algorithm: str | None = None,
    labels_per_class: int | None = None,
    num_labels: int | None = None,
    test: Dataset | tuple[Any, Any] | None = None,
    model: str | None = None,
    iterations: int = 3000,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """Train a classifier from a few labels plus unlabeled data and return it as a ``Run``.

    ``data`` is a built-in dataset name, an image folder or .npz path, a ``DataSource``, a
    ``Dataset``, or an array X with labels ``y`` (-1 = unlabeled). ``algorithm`` defaults to what
    the data needs ("fixmatch" for images, "labelprop" for feature vectors). With neither
    ``labels_per_class`` nor ``num_labels`` every label given is used (fully labeled data, such as
    a built-in benchmark, keeps 4 per class when the algorithm learns from unlabeled data);
    otherwise a stratified, seeded subset of them is kept. ``model`` defaults to what the data
    needs ("cnn" for images, "mlp" for feature vectors; see ``fewlabels.models.default_for``).
    ``options`` are the algorithm's hyper-parameters
    (``options={"threshold": 0.9}``; unknown names are refused with the closest one); other
    keywords are training settings (batch_size, uratio, lr, momentum, eval_every, hflip, ...:
    the fields of ``TrainConfig``). Array data is not flipped horizontally unless
    ``hflip=True``. ``out`` also writes a CLI-style run folder.
    """
    source = None
    if algorithm is None:  # the data decides (fixmatch for images, labelprop for feature vectors): read it first
        source, name = given_source(data, y, settings.get("data_dir"))
        algorithm = algorithms.default_for(source.train.sample_shape)
    config_kw, algo_kw = _settings(algorithm, settings, options)
    # unknown option names are refused here with the closest one, bad values with their range (before the data is
    # read when the algorithm is named)
    algorithms.get(algorithm, **algo_kw)
    if source is None:
        source, name = given_source(data, y, config_kw.get("data_dir"))
    if test is not None:
        source = dataclasses.replace(source, test=given_test_set(test, source.train))
    config = TrainConfig(dataset=name, labels_per_class=_item(labels_per_class), num_labels=_item(num_labels), seed=_item(seed),
                         algorithm=algorithm, options=algo_kw, model=model, iterations=_item(iterations),
                         out=None if out is None else str(out), **config_kw)
    prepared = prepare(config, source, overwrite=overwrite)
    trainer = Trainer(prepared, progress)
    results = trainer.run()
    return Run(trainer.ema.module, trainer.classes, results, config, prepared.source.train.sample_shape)  # as trained (resized)


def pipeline(data: DataLike = "fashion-mnist", y: Any = None, *, labels_per_class: int | None = None,
             num_labels: int | None = None, test: Dataset | tuple[Any, Any] | None = None, model: str | None = None,
             seed: int = 0, stages: dict[str, dict[str, Any]] | None = None, out: str | os.PathLike | None = None,
             progress: bool = False, overwrite: bool = False, encoder: str | None = None, **settings: Any) -> Run:
    """Pretrain, fine-tune and distil (``fewlabels pipeline``) and return the final model; its record is ``.pipeline``.

    ``data``, ``y``, ``labels_per_class``, ``num_labels``, ``test`` and ``model`` as for ``fit``;
    ``settings`` are training settings every stage shares; ``stages`` overrides one stage's, e.g.
    ``{"pretrain": {"iterations": 300}, "finetune": {"options": {"threshold": 0.9}}}``. Without
    ``out`` the stages' folders live in a temporary folder, gone once the final model is loaded. ``encoder`` (a
    foundation encoder's folder or hub id): its stages instead, ``{"teacher": ..., "distill": ...}``.
    """
    import tempfile

    from fewlabels.train.pipeline import default_stages, run_pipeline

    source, name = given_source(data, y, settings.get("data_dir"))
    if test is not None:
        source = dataclasses.replace(source, test=given_test_set(test, source.train))
    common = {"dataset": name, "labels_per_class": _item(labels_per_class), "num_labels": _item(num_labels),
              "seed": _item(seed), "model": model,
              **{k: _item(v) for k, v in settings.items()}}
    if out is not None:
        record = run_pipeline(common, out, default_stages(stages, encoder), source=source, progress=progress,
                              overwrite=overwrite)
        run = load(out)
    else:
        with tempfile.TemporaryDirectory(prefix="fewlabels-pipeline-") as tmp:
            record = run_pipeline(common, tmp, default_stages(stages, encoder), source=source, progress=progress)
            run = load(tmp)
    run.pipeline = record
    return run


def suggest(data: str | os.PathLike, budget: int, *, strategy: str = "auto", run: str | os.PathLike | None = None,
            seed: int = 0, data_dir: str | None = None) -> list[dict]:
    """The ``budget`` unlabeled samples of ``data`` (a built-in name, an image folder or an .npz) most worth labeling
    next, best first, as the rows of ``fewlabels suggest``'s picks.csv; ``run``: a run folder on the same data whose
    features and predictions to use (default: a cold start). On plain arrays: ``fewlabels.select.select``."""
    from fewlabels.select import suggest as suggest_on

    loaded = None if run is None else load(run)
    return suggest_on(str(data), budget, strategy, loaded, seed, data_dir, str(run)).rows


def check_labels(run: str | os.PathLike, *, seed: int = 0) -> list[dict]:
    """A run's labeled samples, most doubtful label first, as the rows of ``fewlabels check-labels``'s CSV.
    On plain arrays: ``fewlabels.select.check_labels``."""
    from fewlabels.select import check_run

    return check_run(load(run), str(run), seed=seed).rows


__all__ = ["Run", "check_labels", "fit", "load", "pipeline", "suggest"]
