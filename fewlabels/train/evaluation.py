"""One evaluation of a run: a metrics row from the step tally and the monitors, on the EMA and raw models.

``trainer`` is train/loop.py's ``Trainer`` (not imported: the loop imports this file).
"""

from __future__ import annotations

from typing import Any

from fewlabels.algorithms.components.result import TOTAL
from fewlabels.evaluate.monitors import EvalContext, run_monitors


def metrics_row(trainer: Any, tally: dict[str, float]) -> dict[str, Any]:
    """The mean of every scalar the algorithm returned since the last row, then the monitors' figures."""
    n = max(1, tally.get("_n", 0))
    row: dict[str, Any] = {"step": trainer.step, "train_time_s": round(trainer.train_time, 2),
                           "lr": trainer.optimizer.param_groups[0]["lr"]}
    for k, v in tally.items():
        if not k.startswith("_"):
            row["loss" if k == TOTAL else k] = v / n
    if tally.get("_pl_total"):
        row["pseudo_label_acc"] = tally["_pl_right"] / tally["_pl_total"]
    row.update(run_monitors(trainer.monitors, eval_context(trainer)))
    return row


def eval_context(trainer: Any) -> EvalContext:
    """What the monitors read: both models, the labeled set, the test and validation sets where there are."""
    test, split = trainer.p.source.test, trainer.p.split
    ctx = EvalContext(model=trainer.model, ema_model=trainer.ema.module, step=trainer.step, predict=trainer.predict_outputs,
                      labeled_x=trainer.train_x[split.labeled], labeled_y=trainer.train_y[split.labeled],
                      views=trainer.batches.views)
    if test is not None:
        ctx.test_x, ctx.test_y = test.x, test.y
    if len(split.validation):
        ctx.val_x, ctx.val_y = trainer.train_x[split.validation], trainer.train_y[split.validation]
    return ctx
