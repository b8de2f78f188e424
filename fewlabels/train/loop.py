"""The training loop: iteration-based, EMA evaluation through monitors, a run folder.

``prepare`` (train/preparation.py) checks everything before the run folder is touched; the
``Trainer`` builds the run's state, and ``run`` is the loop itself. Each other concern is a file
the Trainer calls: the student network (student.py), a teacher from a run folder (teacher.py),
the checkpoint's layout and saving (checkpointing.py), an evaluation row (evaluation.py), the
progress line (progress.py) and the results record (records.py).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import torch

from fewlabels import augment
from fewlabels.algorithms import Algorithm, SetupContext, check_context
from fewlabels.algorithms.components.result import MASK, PSEUDO_LABELS, TOTAL
from fewlabels.data import DataSource
from fewlabels.evaluate import predict_logits
from fewlabels.evaluate.metrics import predict_outputs
from fewlabels.evaluate.monitors import default_monitors
from fewlabels.evaluate.tta import resolve_for as resolve_tta
from fewlabels.models.ema import EMA
from fewlabels.storage import RunFolder
from fewlabels.train.batches import BatchMaker
from fewlabels.train.checkpointing import checkpoint_state, restore_state, save_checkpoint
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import any_rank, average_gradients, barrier, global_batchnorm, is_main_process, rank_and_world
from fewlabels.train.estimate import RunEstimate, is_long
from fewlabels.train.evaluation import metrics_row
from fewlabels.train.optim import cosine_schedule, make_optimizer
from fewlabels.train.precision import autocast, resolve_for
from fewlabels.train.preparation import Prepared, prepare, seed_everything
from fewlabels.train.progress import Progress, say
from fewlabels.train.records import log_scalars, results_record, tensorboard_writer
from fewlabels.train.signals import StopSignals, TrainingError, TrainingInterrupted
from fewlabels.train.student import backbone_groups, build_student
from fewlabels.train.teacher import load_teacher
from fewlabels.utils.memory import keep_freed_memory


class Trainer:
    """Holds the run's state; ``run()`` trains to the end and returns the results record."""

    def __init__(self, prepared: Prepared, progress: bool = True, restoring: bool = False) -> None:
        """``restoring``: a checkpoint will replace the weights (resume), so ``--init`` is not read again."""
        keep_freed_memory()  # every step frees and reallocates the same large tensors: keep them (~15% of a step here)
        self.p, self.cfg, self.device, self.progress = prepared, prepared.config, prepared.device, progress
        self.rank, self.world = rank_and_world()
        train = prepared.source.train
        self.train_x, self.classes = train.x, train.classes
        self.train_y = train.y if prepared.labels is None else prepared.labels  # noisy on the labeled set, if asked
        seed_everything(self.cfg.seed)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.channels_last = self.cfg.channels_last and train.is_image
        self.model, std, self.init_record = build_student(self.cfg, train, self.device, self.world, self.channels_last,
                                                          restoring, pool=(prepared.split.labeled, prepared.split.unlabeled))
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.algorithm = self._setup_algorithm(prepared.algorithm)  # before the optimizer: it may bring parameters
        self.optimizer = make_optimizer(self.model, self.cfg.lr, self.cfg.momentum, self.cfg.weight_decay, self.cfg.nesterov,
                                        extra=self.algorithm.parameters(),
                                        groups=[*self.algorithm.param_groups(), *backbone_groups(self.model, self.cfg)],
                                        optimizer=self.cfg.optimizer, lookahead=self.cfg.lookahead,
                                        norm_lr_scale=self.cfg.bn_bias_lr_scale)
        self.scheduler = cosine_schedule(self.optimizer, self.cfg.iterations)
        views = (augment.make_views(prepared.hflip, prepared.symmetries) if train.is_image
                 else augment.make_feature_views(std.nan_to_num(posinf=0.0).clamp(min=1e-6)))
        self.batches = BatchMaker(self.train_x, self.train_y, prepared.split.labeled, prepared.split.unlabeled, views,
                                  self.algorithm.views, self.cfg.batch_size, self.cfg.uratio, self.cfg.seed, self.device,
                                  self.channels_last, self.rank, self.world)
        self.monitors = [*default_monitors(), *self.algorithm.monitors()]
        self.precision = resolve_for(self)  # precision.py: fp32, or bf16 autocast of the forward pass
        resolve_tta(self)  # evaluate/tta.py: flip test-time augmentation where the views flip (config.tta)
        self.folder = RunFolder(self.cfg.out) if self.cfg.out else None
        self.out = self.folder.path if self.folder else None
        self.step = 0
        self.rows: list[dict] = []
        self.tally: dict[str, float] = {}  # sums since the last evaluation
        self.train_time = self.eval_time = self.checkpoint_time = 0.0
        self.started = False  # whether the run folder holds this run (its first checkpoint is written)
        self.board = None  # the TensorBoard writer, once the run folder exists

    def _setup_algorithm(self, algorithm: Algorithm) -> Algorithm:
        split, train = self.p.split, self.p.source.train
        labeled = torch.as_tensor(split.labeled, dtype=torch.int64)
        teacher = load_teacher(algorithm, self.classes, tuple(self.train_x.shape[1:]), self.device, self.channels_last,
                               split)
        ctx = SetupContext(model=self.model, num_classes=train.num_classes, num_labeled=len(split.labeled),
                           num_unlabeled=len(split.unlabeled), total_steps=self.cfg.iterations,
                           labeled_y=self.train_y[labeled], label_noise=self.cfg.label_noise, ema_decay=self.cfg.ema_decay,
                           device=self.device, sample_shape=tuple(train.sample_shape), teacher=teacher,
                           pool=(train.x[labeled], train.x[split.unlabeled]) if "pool" in algorithm.requires else None,
                           label_smoothing=self.cfg.label_smoothing)
        check_context(algorithm, ctx)
        algorithm.take_run_settings(ctx)
        algorithm.setup(ctx)
        algorithm.to(self.device)
        if self.world > 1:  # heads the algorithm built in setup (ShrinkMatch's has BatchNorm), before the optimizer sees them
            algorithm = global_batchnorm(algorithm)
        return algorithm

    # ---- one step

    def make_batch(self) -> tuple[dict, torch.Tensor | None]:
        return self.batches.make(self.step)

    def train_step(self, tally: dict[str, float]) -> None:
        self.model.train()
        if self.cfg.freeze_backbone:  # linear probing: the encoder's batch statistics stay as they were
            self.model.backbone.eval()
        batch, hidden = self.make_batch()
        with autocast(self.cfg.precision, self.device):
            out = self.algorithm.losses(self.model, batch, self.step)
        scalars = {k: v for k, v in out.items() if v.dim() == 0}
        self._check_finite(scalars)
        self.optimizer.zero_grad(set_to_none=True)
        out[TOTAL].backward()
        if self.world > 1:  # each rank's loss is the mean over its share: the mean of the ranks' gradients is the global one
            average_gradients(p for group in self.optimizer.param_groups for p in group["params"])
        self.optimizer.step()
        self.scheduler.step()
        self.algorithm.after_step(self.model)
        self.ema.update(self.model)
        for k, v in scalars.items():
            tally[k] = tally.get(k, 0.0) + float(v.detach())
        tally["_n"] = tally.get("_n", 0) + 1
        if hidden is not None and MASK in out and PSEUDO_LABELS in out:
            mask = out[MASK].cpu() & (hidden >= 0)
            tally["_pl_right"] = tally.get("_pl_right", 0) + int((out[PSEUDO_LABELS].cpu()[mask] == hidden[mask]).sum())
            tally["_pl_total"] = tally.get("_pl_total", 0) + int(mask.sum())
        self.step += 1

    def _check_finite(self, scalars: dict[str, torch.Tensor]) -> None:
        bad = next(((name, value) for name, value in scalars.items() if not torch.isfinite(value)), None)
        if self.world > 1 and any_rank(bad is not None) and bad is None:  # every rank stops, not just the one that saw it
            raise TrainingError(f"A loss became non-finite on another process at step {self.step}; "
                                "lower the learning rate or check the data.")
        if bad is not None:
            name, value = bad
            last = self.folder.last if self.folder else None
            where = f"; the last good checkpoint is {last}" if last is not None and last.exists() else ""
            raise TrainingError(
                f"Loss '{name}' became {float(value.detach())} at step {self.step}{where}; lower the learning rate or check the data."
            )

    # ---- evaluation and checkpoints (their own files)

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, x, self.cfg.eval_batch_size, self.device, self.channels_last)

    def predict_outputs(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return predict_outputs(model, x, self.cfg.eval_batch_size, self.device, self.channels_last)

    def evaluate(self, tally: dict[str, float]) -> dict:
        return metrics_row(self, tally)

    def checkpoint(self) -> dict:
        return checkpoint_state(self)

    def restore(self, ckpt: dict) -> None:
        restore_state(self, ckpt)

    def save_checkpoint(self) -> None:
        save_checkpoint(self)

    # ---- the loop

    def run(self, resumed: bool = False) -> dict:
        """Train to ``cfg.iterations``; SIGINT/SIGTERM stop after the current step with a checkpoint.

        With several processes only rank 0 evaluates, writes files and returns the results
        (the other ranks return an empty dict); logged losses are rank 0's share of the batch.
        """
        cfg, main = self.cfg, is_main_process()
        writing = self.folder is not None and main
        # A fresh run writes nothing until its first checkpoint: one that fails before it (a NaN at step 1, the
        # allocator) leaves no folder behind; metrics rows wait in memory until then.
        self.started = resumed
        barrier()  # every rank has checked its settings and data before rank 0 touches the run folder
        if self.progress and main:
            print(self.p.summary, flush=True)
        bar = Progress(str(cfg.algorithm), self.step, cfg.iterations) if self.progress and main else None
        self.board = tensorboard_writer(self.out) if writing and resumed else None
        estimate = RunEstimate(cfg, self.step)
        with StopSignals() as stop:
            while self.step < cfg.iterations:
                t0 = time.time()
                self.train_step(self.tally)
                self.train_time += time.time() - t0
                said = estimate.add(self.step, time.time() - t0) if main else None
                if said and (bar is not None or is_long(said)):
                    say(f"{'' if bar is not None else 'warning: '}{said}", bar)
                done = self.step == cfg.iterations
                stopping = any_rank(bool(stop.signal))  # all ranks stop at the same step
                if main and (self.step % cfg.eval_every == 0 or done):
                    self._log_evaluation(writing)
                if bar is not None:
                    bar.update(self.step, self.tally, self.rows)
                if writing and (self.step % cfg.checkpoint_every == 0 or done or stopping):
                    self.save_checkpoint()
                if stopping and not done:
                    if bar is not None:
                        bar.close()
                    barrier()  # the checkpoint is on disk before any rank exits
                    raise TrainingInterrupted(stop.signal or signal.SIGTERM, self.step, self.out)
        return self._finish(main, writing, bar)

    def _log_evaluation(self, writing: bool) -> None:
        t0 = time.time()
        row = self.evaluate(self.tally)
        self.rows.append(row)
        self.tally = {}
        if writing and self.started:
            self.folder.write_metrics(self.rows)
        log_scalars(self.board, row, self.step)
        self.eval_time += time.time() - t0

    def _finish(self, main: bool, writing: bool, bar: Progress | None) -> dict[str, Any]:
        """Close the bar and the writer; rank 0 writes and returns the results record, the other ranks an empty dict."""
        for closing in (bar, self.board):
            if closing is not None:
                closing.close()
        if not main:
            barrier()
            return {}
        results = results_record(self)
        if writing:
            self.folder.write_results(results)
        barrier()  # the other ranks end once the results are written
        return results

    def results(self) -> dict:
        return results_record(self)


def train(config: TrainConfig, source: DataSource | None = None, progress: bool = True,
          overwrite: bool = False) -> dict:
    """Train as ``config`` says and return the results record (also in ``out/results.json``)."""
    prepared = prepare(config, source, overwrite)
    return Trainer(prepared, progress).run()


__all__ = ["Prepared", "Trainer", "TrainingError", "TrainingInterrupted", "prepare", "train"]
