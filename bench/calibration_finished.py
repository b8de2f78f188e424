"""Calibration estimators scored on finished runs of the other benches: no retraining, many methods and seeds.

    nice -n 10 python bench/calibration.py --finished runs/bench-consistency/fmnist4/*-s*   # then bench/report.py

Each run folder's final checkpoint is restored (nothing in it is written) and its served logits (with the run's TTA)
are scored at each candidate T: none, the T the run serves (validation split, pool, or none), the pool's weak- and
strong-view ensembles unguarded, and the test-fitted floor (a reference, never a candidate). Beside them, how often a
view's prediction agrees with the clean one on the pool: the label-free figure a rule choosing a view would read.
One JSON per run under bench/results/calibration/finished/; the calibration section of BENCHMARKS.md adds the table.
"""

from __future__ import annotations

from pathlib import Path

from common import machine, mean_std


def restored(folder: Path, sources: dict):
    """A finished run folder's Trainer with its last checkpoint restored, and its results.json; writes nothing."""
    from fewlabels import data
    from fewlabels.storage import RunFolder
    from fewlabels.train.resuming import restored_trainer, saved_config

    run = RunFolder(folder)
    ckpt = run.checkpoint()
    config = saved_config(ckpt)
    key = (config.dataset, config.data_dir)
    if key not in sources:
        sources[key] = data.load(config.dataset, config.data_dir)
    trainer = restored_trainer(config, ckpt, run.source, data=sources[key])
    return trainer, run.results()


def finished_row(folder: Path, sources: dict) -> dict:
    """The pool estimators and the served T scored on a finished run of another bench (no retraining).

    Beside each view's T: how often a view's prediction agrees with the clean one on the pool (``agree``), the
    label-free figure a rule choosing between the views would read.
    """
    import torch
    from calibration import score_candidates

    from fewlabels.evaluate.calibration import fit_temperature
    from fewlabels.evaluate.pool_calibration import ensemble_targets, fit_temperature_to, pool_evidence
    from fewlabels.evaluate.tta import tta_logits

    trainer, res = restored(folder, sources)
    model, mode = trainer.ema.module, res.get("tta", "none")

    def served(x):
        return torch.cat([tta_logits(lambda v: trainer.predict(model, v), x[i : i + 1024], mode)
                          for i in range(0, len(x), 1024)])

    t_fit, agree = {"none": 1.0, "served": res.get("temperature") or 1.0}, {}
    for view in ("weak", "strong"):
        clean, views = pool_evidence(trainer, served, view=view)
        t_fit[f"pool-{view}"] = fit_temperature_to(clean, ensemble_targets(views))
        agree[view] = float((views.argmax(-1) == clean.argmax(1)).double().mean())
    test = trainer.p.source.test
    z = served(test.x).double()
    t_fit["test-fitted"] = fit_temperature(z, test.y)
    cfg = trainer.cfg
    return {"folder": str(folder), "dataset": cfg.dataset, "labels_per_class": cfg.labels_per_class,
            "val_per_class": cfg.val_per_class, "algorithm": cfg.algorithm, "iterations": res["iterations"],
            "seed": cfg.seed, "test_accuracy": res["test_accuracy"], "tta": mode,
            "rescored_accuracy": float((z.argmax(1) == test.y).double().mean()),
            "served_fitted_on": res.get("temperature_fitted_on"), "agree": agree,
            "candidates": score_candidates(z, test.y, t_fit), "machine": machine()}


def finished_table(rows: list[dict]) -> list[str]:
    """Per setting and method (mean over seeds): T and test ECE of each candidate, and the views' pool agreement."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["labels_per_class"], r["algorithm"], r["iterations"],
                          r["val_per_class"] > 0), []).append(r)
    names = ["none", "served", "pool-weak", "pool-strong", "test-fitted"]
    lines = ["", "### The estimators on the benchmarks' own runs", "",
             "Finished runs of the consistency and pipeline benches, restored and scored without retraining "
             "(`python bench/calibration.py --finished FOLDER ...`): T and test ECE at each candidate, mean over the "
             "runs (each a seed); *served*: the T the run serves (validation split where it held one, else the pool "
             "estimate for the methods it is checked on, else 1); *agree*: how often one weak / strong view's "
             "prediction equals the clean one's on the pool.", "",
             "| dataset | labels/class | method | steps | validation split | runs | test acc % | agree weak / strong | "
             + " | ".join(names) + " |", "|---" * (8 + len(names)) + "|"]
    for (ds, lpc, algo, it, val), rs in sorted(cells.items()):
        acc = mean_std([r["test_accuracy"] for r in rs])[0]
        agree = " / ".join(f"{mean_std([r['agree'][v] for r in rs])[0]:.2f}" for v in ("weak", "strong"))
        cols = []
        for n in names:
            t, e = (mean_std([r["candidates"][n][k] for r in rs])[0] for k in ("temperature", "ece"))
            cols.append(f"T {t:.2f}, ECE {e:.3f}")
        lines.append(f"| {ds} | {lpc} | {algo} | {it} | {'yes' if val else 'no'} | {len(rs)} | {100 * acc:.1f} | "
                     f"{agree} | " + " | ".join(cols) + " |")
    return lines
