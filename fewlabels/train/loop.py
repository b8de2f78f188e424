"""The training loop: iteration-based, EMA evaluation through monitors, a run folder.

``prepare`` (train/prepare.py) checks everything before the run folder is touched; the
``Trainer`` builds the run's state, and ``run`` is the loop itself.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import torch

from fewlabels import augment, models
from fewlabels.algorithms import Algorithm, SetupContext, check_context
from fewlabels.data import DataSource
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate import predict_logits
from fewlabels.evaluate.metrics import predict_outputs
from fewlabels.evaluate.monitors import EvalContext, default_monitors, run_monitors
from fewlabels.models.ema import EMA
from fewlabels.train.batches import BatchMaker
from fewlabels.train.checkpoint import CHECKPOINT_FORMAT, rng_state, set_rng_state
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import any_rank, average_gradients, barrier, global_batchnorm, is_main_process, rank_and_world
from fewlabels.train.estimate import RunEstimate, is_long
from fewlabels.train.init import apply_init, read_init
from fewlabels.train.optim import cosine_schedule, make_optimizer
from fewlabels.train.prepare import Prepared, normalization_stats, prepare, seed_everything
from fewlabels.train.records import log_scalars, results_record, tensorboard_writer
from fewlabels.train.run_folder import RunFolder, build_model, resolve_run
from fewlabels.train.signals import StopSignals, TrainingError, TrainingInterrupted
from fewlabels.utils.memory import keep_freed_memory
from fewlabels.version import __version__

PROGRESS_FIGURES = ("test_acc", "knn_acc", "emb_spread")  # the last evaluation's figures the progress bar shows


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
        self.init_record: dict[str, Any] | None = None
        self.model, std = self._build_model(restoring)
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.algorithm = self._setup_algorithm(prepared.algorithm)  # before the optimizer: it may bring parameters
        self.optimizer = make_optimizer(self.model, self.cfg.lr, self.cfg.momentum, self.cfg.weight_decay, self.cfg.nesterov,
                                        extra=self.algorithm.parameters(),
                                        groups=[*self.algorithm.param_groups(), *self._backbone_groups()])
        self.scheduler = cosine_schedule(self.optimizer, self.cfg.iterations)
        views = (augment.make_views(prepared.hflip, prepared.symmetries) if train.is_image
                 else augment.make_feature_views(std.nan_to_num(posinf=0.0).clamp(min=1e-6)))
        self.batches = BatchMaker(self.train_x, self.train_y, prepared.split.labeled, prepared.split.unlabeled, views,
                                  self.algorithm.views, self.cfg.batch_size, self.cfg.uratio, self.cfg.seed, self.device,
                                  self.channels_last, self.rank, self.world)
        self.monitors = [*default_monitors(), *self.algorithm.monitors()]
        self.folder = RunFolder(self.cfg.out) if self.cfg.out else None
        self.out = self.folder.path if self.folder else None
        self.step = 0
        self.rows: list[dict] = []
        self.tally: dict[str, float] = {}  # sums since the last evaluation
        self.train_time = self.eval_time = self.checkpoint_time = 0.0
        self.started = False  # whether the run folder holds this run (its first checkpoint is written)
        self.board = None  # the TensorBoard writer, once the run folder exists

    def _build_model(self, restoring: bool) -> tuple[torch.nn.Module, torch.Tensor]:
        train = self.p.source.train
        model = models.get(self.cfg.model, train.sample_shape, train.num_classes)
        mean, std = normalization_stats(train.x)
        model.set_normalization(mean, std)
        if self.cfg.init is not None and not restoring:  # the encoder brings the normalization it was trained with
            state, self.init_record = read_init(self.cfg.init)
            self.init_record["tensors"] = apply_init(model, state, self.cfg.init_head, self.cfg.init, self.cfg.model)
        if self.cfg.freeze_backbone:
            model.backbone.requires_grad_(False)
        model.to(self.device)
        if self.world > 1:  # batch statistics over the global batch, as one process with W times the batch sees them
            model = global_batchnorm(model)
        return self._in_layout(model), std

    def _in_layout(self, model: torch.nn.Module) -> torch.nn.Module:
        """The memory layout batches arrive in (channels-last for images): a network in another one runs ~2x slower."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _setup_algorithm(self, algorithm: Algorithm) -> Algorithm:
        split, train = self.p.split, self.p.source.train
        labeled = torch.as_tensor(split.labeled, dtype=torch.int64)
        ctx = SetupContext(model=self.model, num_classes=train.num_classes, num_labeled=len(split.labeled),
                           num_unlabeled=len(split.unlabeled), total_steps=self.cfg.iterations,
                           labeled_y=self.train_y[labeled], label_noise=self.cfg.label_noise, ema_decay=self.cfg.ema_decay,
                           device=self.device, sample_shape=tuple(train.sample_shape), teacher=self._teacher(algorithm),
                           pool=(train.x[labeled], train.x[split.unlabeled]) if "pool" in algorithm.requires else None)
        check_context(algorithm, ctx)
        algorithm.setup(ctx)
        algorithm.to(self.device)
        if self.world > 1:  # heads the algorithm built in setup (ShrinkMatch's has BatchNorm), before the optimizer sees them
            algorithm = global_batchnorm(algorithm)
        return algorithm

    def _teacher(self, algorithm: Algorithm) -> torch.nn.Module | None:
        """The frozen teacher an algorithm names (``teacher=RUN_DIR``), read through the one run-folder reader."""
        path = getattr(algorithm, "teacher", None) if "teacher" in algorithm.requires else None
        if not path:
            return None
        folder = RunFolder(resolve_run(path))
        config, classes, shape, state = folder.final_model()  # one read of the checkpoint
        if folder.path.is_dir() and not folder.results():  # a half-trained teacher would pass its mistakes on silently
            how = f"train --resume {path}" if folder.path.samefile(path) else f"pipeline --resume {path}"
            raise FewLabelsError(f"The teacher {path} is not a finished run (it has no results.json); finish it with "
                                 f"fewlabels {how}, or name a finished run.")
        model = build_model(folder.source, config.get("model", ""), shape, len(classes), state).eval()
        if list(classes) != list(self.classes) or tuple(shape) != tuple(self.train_x.shape[1:]):
            raise FewLabelsError(f"The teacher {path} was trained on classes {classes} and samples of shape {tuple(shape)}, "
                                 f"but this data has {self.classes} and {tuple(self.train_x.shape[1:])}; distil on data like "
                                 "the teacher's.")
        return self._in_layout(model.to(self.device))  # the student's layout: a contiguous teacher ran ~2x slower

    def _backbone_groups(self) -> list[dict[str, Any]]:
        """The backbone at ``backbone_lr_scale`` times the learning rate (weight decay as the model's own groups)."""
        if self.cfg.backbone_lr_scale == 1.0:
            return []
        params = [p for p in self.model.backbone.parameters() if p.requires_grad]
        lr = self.cfg.lr * self.cfg.backbone_lr_scale
        return [{"params": [p for p in params if p.dim() > 1], "lr": lr, "weight_decay": self.cfg.weight_decay},
                {"params": [p for p in params if p.dim() <= 1], "lr": lr, "weight_decay": 0.0}]

    # ---- one step

    def make_batch(self) -> tuple[dict, torch.Tensor | None]:
        return self.batches.make(self.step)

    def train_step(self, tally: dict[str, float]) -> None:
        self.model.train()
        if self.cfg.freeze_backbone:  # linear probing: the encoder's batch statistics stay as they were
            self.model.backbone.eval()
        batch, hidden = self.make_batch()
        out = self.algorithm.losses(self.model, batch, self.step)
        scalars = {k: v for k, v in out.items() if v.dim() == 0}
        self._check_finite(scalars)
        self.optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        if self.world > 1:  # each rank's loss is the mean over its share: the mean of the ranks' gradients is the global one
            average_gradients(p for group in self.optimizer.param_groups for p in group["params"])
        self.optimizer.step()
        self.scheduler.step()
        self.algorithm.after_step(self.model)
        self.ema.update(self.model)
        for k, v in scalars.items():
            tally[k] = tally.get(k, 0.0) + float(v.detach())
        tally["_n"] = tally.get("_n", 0) + 1
        if hidden is not None and "mask" in out and "pseudo_labels" in out:
            mask = out["mask"].cpu() & (hidden >= 0)
            tally["_pl_right"] = tally.get("_pl_right", 0) + int((out["pseudo_labels"].cpu()[mask] == hidden[mask]).sum())
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

    # ---- evaluation and records

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, x, self.cfg.eval_batch_size, self.device, self.channels_last)

    def predict_outputs(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return predict_outputs(model, x, self.cfg.eval_batch_size, self.device, self.channels_last)

    def evaluate(self, tally: dict[str, float]) -> dict:
        """One metrics row: the mean of every scalar the algorithm returned since the last row, then the monitors'."""
        n = max(1, tally.get("_n", 0))
        row: dict[str, Any] = {"step": self.step, "train_time_s": round(self.train_time, 2),
                               "lr": self.optimizer.param_groups[0]["lr"]}
        for k, v in tally.items():
            if not k.startswith("_"):
                row["loss" if k == "total" else k] = v / n
        if tally.get("_pl_total"):
            row["pseudo_label_acc"] = tally["_pl_right"] / tally["_pl_total"]
        row.update(run_monitors(self.monitors, self._eval_context()))
        return row

    def _eval_context(self) -> EvalContext:
        test, split = self.p.source.test, self.p.split
        ctx = EvalContext(model=self.model, ema_model=self.ema.module, step=self.step, predict=self.predict_outputs,
                          labeled_x=self.train_x[split.labeled], labeled_y=self.train_y[split.labeled],
                          views=self.batches.views)
        if test is not None:
            ctx.test_x, ctx.test_y = test.x, test.y
        if len(split.validation):
            ctx.val_x, ctx.val_y = self.train_x[split.validation], self.train_y[split.validation]
        return ctx

    def checkpoint(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, streams, RNGs, tallies."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.cfg.to_dict(),
            "classes": list(self.classes),
            "sample_shape": list(self.train_x.shape[1:]),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": {"module": self.ema.module.state_dict(), "updates": int(self.ema.updates), "decay": float(self.ema.decay)},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "streams": self.batches.state_dict(),
            "rng": rng_state(),
            "rows": self.rows,
            "tally": self.tally,
            "timing": {"train_s": self.train_time, "eval_s": self.eval_time, "checkpoint_s": self.checkpoint_time},
            "init": self.init_record,
        }

    def restore(self, ckpt: dict) -> None:
        """Continue from ``checkpoint()``'s output (already checked to belong to this config)."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.module.load_state_dict(ckpt["ema"]["module"])
        self.ema.updates, self.ema.decay = int(ckpt["ema"]["updates"]), float(ckpt["ema"]["decay"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["format"] == CHECKPOINT_FORMAT:
            self.algorithm.load_state_dict(ckpt["algorithm"])
        self.batches.load_state_dict(ckpt["streams"])
        set_rng_state(ckpt["rng"])
        self.step = int(ckpt["step"])
        self.rows = list(ckpt["rows"])
        self.tally = dict(ckpt["tally"])
        self.init_record = ckpt.get("init")
        timing = ckpt["timing"]
        self.train_time, self.eval_time, self.checkpoint_time = timing["train_s"], timing["eval_s"], timing["checkpoint_s"]

    def save_checkpoint(self) -> None:
        t0 = time.time()
        if self.started:
            self.folder.save_checkpoint(self.checkpoint(), self.step, self.cfg.keep_checkpoints)
        else:  # a fresh run's first checkpoint: the folder comes into being resumable (see RunFolder.start)
            self.folder.start(self.cfg.to_dict(), self.checkpoint(), self.step, self.cfg.keep_checkpoints)
            self.started = True
            if self.rows:
                self.folder.write_metrics(self.rows)
            self.board = tensorboard_writer(self.out)
            for row in self.rows:
                log_scalars(self.board, row, row["step"])
        self.checkpoint_time += time.time() - t0

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
        bar = self._progress_bar() if self.progress and main else None
        self.board = tensorboard_writer(self.out) if writing and resumed else None
        estimate = RunEstimate(cfg, self.step)
        with StopSignals() as stop:
            while self.step < cfg.iterations:
                t0 = time.time()
                self.train_step(self.tally)
                self.train_time += time.time() - t0
                said = estimate.add(self.step, time.time() - t0) if main else None
                if said and (bar is not None or is_long(said)):
                    _say(f"{'' if bar is not None else 'warning: '}{said}", bar)
                done = self.step == cfg.iterations
                stopping = any_rank(bool(stop.signal))  # all ranks stop at the same step
                if main and (self.step % cfg.eval_every == 0 or done):
                    self._log_evaluation(writing)
                if bar is not None:
                    self._update_bar(bar)
                if writing and (self.step % cfg.checkpoint_every == 0 or done or stopping):
                    self.save_checkpoint()
                if stopping and not done:
                    if bar is not None:
                        bar.close()
                    barrier()  # the checkpoint is on disk before any rank exits
                    raise TrainingInterrupted(stop.signal or signal.SIGTERM, self.step, self.out)
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

    def _log_evaluation(self, writing: bool) -> None:
        t0 = time.time()
        row = self.evaluate(self.tally)
        self.rows.append(row)
        self.tally = {}
        if writing and self.started:
            self.folder.write_metrics(self.rows)
        log_scalars(self.board, row, self.step)
        self.eval_time += time.time() - t0

    def _progress_bar(self):
        from tqdm import tqdm

        return tqdm(total=self.cfg.iterations, initial=self.step, desc=f"{self.cfg.algorithm}", dynamic_ncols=True)

    def _update_bar(self, bar) -> None:
        bar.update(self.step - bar.n)
        if self.step % 10 == 0 or self.step == self.cfg.iterations:
            bar.set_postfix(self._postfix(), refresh=False)

    def _postfix(self) -> dict[str, str]:
        """The running loss and mask rate since the last evaluation, and the last evaluation's figures."""
        n = max(1, self.tally.get("_n", 0))
        post = {}
        if "total" in self.tally:
            post["loss"] = f"{self.tally['total'] / n:.3f}"
        if "mask_rate" in self.tally:
            post["mask"] = f"{self.tally['mask_rate'] / n:.2f}"
        last = self.rows[-1] if self.rows else {}
        for key in PROGRESS_FIGURES:
            if last.get(key) is not None:
                post[key] = f"{last[key]:.4f}"
        return post

    def results(self) -> dict:
        return results_record(self)


def _say(text: str, bar) -> None:
    """A line above the progress bar, or on stderr when there is none."""
    if bar is not None:
        bar.write(text)
    else:
        print(text, file=sys.stderr, flush=True)


def train(config: TrainConfig, source: DataSource | None = None, progress: bool = True,
          overwrite: bool = False) -> dict:
    """Train as ``config`` says and return the results record (also in ``out/results.json``)."""
    prepared = prepare(config, source, overwrite)
    return Trainer(prepared, progress).run()


__all__ = ["Prepared", "Trainer", "TrainingError", "TrainingInterrupted", "prepare", "train"]
