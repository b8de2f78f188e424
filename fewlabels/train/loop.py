"""The training loop: iteration-based, two index streams, EMA evaluation, a run folder.

Everything that can be wrong with the input is checked in ``prepare`` before the
run folder is touched, so a bad call leaves nothing behind.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import platform
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fewlabels import __version__, algorithms, augment, models
from fewlabels import data as data_mod
from fewlabels.algorithms import Algorithm
from fewlabels.data import DataSource, Split
from fewlabels.data.longtail import long_tail_indices
from fewlabels.data.noise import add_label_noise
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate import accuracy, predict_logits, summarize
from fewlabels.train.config import TrainConfig
from fewlabels.train.distributed import (
    any_rank,
    average_gradients,
    barrier,
    global_batchnorm,
    global_batchnorm_in,
    init_from_env,
    is_main_process,
    rank_and_world,
    shard,
)
from fewlabels.train.ema import EMA
from fewlabels.train.optim import cosine_schedule, make_optimizer
from fewlabels.train.streams import IndexStream
from fewlabels.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable_dir
from fewlabels.utils.memory import keep_freed_memory

CHECKPOINT_FORMAT = 1
RUN_FILES = ("config.yaml", "metrics.csv", "results.json", "last.pt")  # plus checkpoint-<step>.pt
METRIC_COLUMNS = ["step", "train_time_s", "lr", "loss", "sup", "unsup", "mask_rate", "pseudo_label_acc",
                  "test_acc", "test_acc_raw", "val_acc"]


class TrainingError(RuntimeError):
    """The run itself failed (diverged); the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; the step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int, out: Path | None) -> None:
        self.signum = signum
        how = f", checkpoint saved; continue with: fewlabels train --resume {out}" if out is not None else ""
        super().__init__(f"Stopped by {signal.Signals(signum).name} after step {step}{how}")


class StopSignals:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.signal = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Prepared:
    config: TrainConfig
    source: DataSource
    split: Split
    algorithm: Algorithm
    device: torch.device
    hflip: bool
    labels: torch.Tensor | None = None  # the training pool's labels as training sees them (noisy on the labeled set); None: source.train.y
    variants: dict[str, Any] = field(default_factory=dict)  # what label noise / long tail did, for results.json


# seed streams of the data variants, apart from the split's own (NumPy SeedSequence entropy (seed, stream))
LONG_TAIL_LABELED_STREAM, LONG_TAIL_UNLABELED_STREAM, NOISE_STREAM = 1, 2, 3


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FewLabelsError(f"device '{name}' was asked for but no CUDA GPU is available; use --device cpu.")
    return torch.device(name)


def prepare(config: TrainConfig, source: DataSource | None = None, overwrite: bool = False) -> Prepared:
    """Validate everything and load the data; touches no file.

    The data variants are applied in this order: (1) the stratified, seeded split of the
    training pool; (2) with ``imbalance_ratio`` > 1, the long tail cut from the labeled and
    the unlabeled sets (``long_tail_split``); (3) with ``label_noise`` > 0, exactly
    round(rate * n) of the n labeled samples' labels flipped (seeded by (seed, 3)). Labels
    of the validation set, the unlabeled pool's hidden labels (diagnostics only) and the
    test set stay clean; the test set stays balanced.
    """
    config.validate()
    algorithm = algorithms.get(config.algorithm, **config.options)
    models.check_name(config.model)  # before loading data: a typo should not cost a dataset load
    device = init_from_env(config.device) or resolve_device(config.device)  # under torchrun: join the process group
    if config.out is not None:
        check_writable_dir(config.out)
        out = Path(config.out)
        if out.is_dir() and any((out / f).exists() for f in RUN_FILES) and not overwrite:
            raise FewLabelsError(f"{out} already holds a run; choose another --out folder or pass --overwrite.")
    if source is None:
        source = data_mod.load(config.dataset, config.data_dir)
    train = source.train
    split = data_mod.split(train.y, config.labels_per_class, config.num_labels, config.val_per_class,
                           config.seed, train.classes)
    if config.imbalance_ratio > 1.0:
        split = long_tail_split(split, train.y, config.imbalance_ratio, config.seed, train.classes)
    if algorithm.uses_unlabeled and len(split.unlabeled) == 0:
        raise FewLabelsError(f"{config.algorithm} needs unlabeled data but every sample is labeled; "
                             "ask for fewer labels or use --algorithm supervised.")
    if len(np.unique(train.y[split.labeled].numpy())) < 2:
        raise FewLabelsError("The labeled data covers a single class; a classifier needs at least two.")
    models.check(config.model, train.sample_shape)
    hflip = source.hflip if config.hflip is None else config.hflip
    algorithm.check_data(train.sample_shape, len(train.classes), hflip=hflip)
    labels, flipped = train.y, 0
    if config.label_noise > 0:
        noisy, mask = add_label_noise(train.y[split.labeled], config.label_noise, config.noise_type, len(train.classes),
                                      seed=(config.seed, NOISE_STREAM))
        labels = train.y.clone()
        labels[torch.as_tensor(split.labeled, dtype=torch.int64)] = noisy
        flipped = int(mask.sum())
    return Prepared(config, source, split, algorithm, device, hflip, labels, data_variants(config, train, split, flipped))


def long_tail_split(split: Split, y: torch.Tensor, ratio: float, seed: int, classes: list[str]) -> Split:
    """The split with its labeled and unlabeled sets cut to the long-tailed profile; validation stays balanced.

    Order: (1) the usual stratified split of the balanced pool (labeled, validation, unlabeled);
    (2) the labeled set keeps round(n_max * ratio^(-c/(K-1))) of class c, n_max = its smallest
    class (labels_per_class when given); (3) the unlabeled set likewise by its hidden labels, with
    its own n_max; rows without a label (-1) all stay. Dropped samples are simply not used. The
    test set is not touched, so per-class test accuracy measures the tail.
    """
    y_np = y.numpy()
    k = len(classes)
    kept = long_tail_indices(y_np[split.labeled], ratio, k, seed=(seed, LONG_TAIL_LABELED_STREAM))
    labeled = split.labeled[kept]
    counts = np.bincount(y_np[labeled], minlength=k)
    if (counts == 0).any():
        c = int(np.flatnonzero(counts == 0)[0])
        raise FewLabelsError(f"imbalance_ratio={ratio:g} leaves class '{classes[c]}' without labels (the head class keeps "
                             f"{int(counts.max())}); ask for more labels per class or a smaller imbalance_ratio.")
    unlabeled = split.unlabeled
    hidden = y_np[unlabeled]
    if (hidden >= 0).any():
        present = np.unique(hidden[hidden >= 0])
        if len(present) < k:
            missing = classes[int(np.setdiff1d(np.arange(k), present)[0])]
            raise FewLabelsError(f"imbalance_ratio={ratio:g} needs unlabeled samples of every class to profile, but class "
                                 f"'{missing}' has none; ask for fewer labels or set imbalance_ratio=1.")
        unlabeled = unlabeled[long_tail_indices(hidden, ratio, k, seed=(seed, LONG_TAIL_UNLABELED_STREAM))]
    return Split(labeled, unlabeled, split.validation)


def data_variants(config: TrainConfig, train, split: Split, flipped: int) -> dict[str, Any]:
    """The record of what was applied: noise rate and realised flips, per-class labeled/unlabeled counts (clean labels)."""
    k = len(train.classes)
    y = train.y.numpy()
    hidden = y[split.unlabeled]
    return {
        "label_noise": {"rate": config.label_noise, "type": config.noise_type, "flipped": flipped, "of": len(split.labeled)},
        "class_counts": {
            "imbalance_ratio": config.imbalance_ratio,
            "labeled": dict(zip(train.classes, np.bincount(y[split.labeled], minlength=k).tolist())),
            "unlabeled": dict(zip(train.classes, np.bincount(hidden[hidden >= 0], minlength=k).tolist())),
            "unlabeled_without_label": int((hidden < 0).sum()),
        },
    }


def setup_algorithm(algorithm: Algorithm, model: torch.nn.Module, num_classes: int, num_unlabeled: int, total_steps: int,
                    labeled_y: torch.Tensor, label_noise: float, ema_decay: float) -> None:
    """``algorithm.setup`` plus the data facts it asks for by keyword.

    ``labeled_y`` (the labeled set's labels as training sees them, in the order of
    ``batch["labeled"]["index"]``), ``label_noise`` (the configured noise rate) and ``ema_decay`` are passed
    only to a ``setup`` that names them (or takes ``**kwargs``), so every other algorithm's
    four-argument ``setup`` is called as before.
    """
    params = inspect.signature(algorithm.setup).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    facts = {"labeled_y": labeled_y, "label_noise": label_noise, "ema_decay": ema_decay}
    algorithm.setup(model, num_classes, num_unlabeled, total_steps, **{k: v for k, v in facts.items() if takes_any or k in params})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def normalization_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (images, on 0..1) or per-feature mean and std of the training pool."""
    if x.dim() == 4:
        sample = x[: 20000].float() / 255.0
        return sample.mean(dim=(0, 2, 3)), sample.std(dim=(0, 2, 3))
    return x.mean(0), x.std(0)


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def tensorboard_writer(out: Path | None):
    """A TensorBoard writer in ``out/tensorboard`` when the optional ``tensorboard`` package is installed, else None."""
    if out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional extra is not installed: metrics.csv has the same numbers
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


class Trainer:
    """Holds the run's state; ``run()`` trains to the end and returns the results record."""

    def __init__(self, prepared: Prepared, progress: bool = True) -> None:
        keep_freed_memory()  # every step frees and reallocates the same large tensors: keep them (~15% of a step here)
        self.p = prepared
        cfg = prepared.config
        self.cfg = cfg
        self.device = prepared.device
        self.progress = progress
        self.rank, self.world = rank_and_world()
        train = prepared.source.train
        self.train_x = train.x
        self.train_y = train.y if prepared.labels is None else prepared.labels  # noisy on the labeled set, if asked
        self.classes = train.classes
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.model = models.get(cfg.model, train.sample_shape, train.num_classes)
        mean, std = normalization_stats(train.x)
        self.model.set_normalization(mean, std)
        self.channels_last = cfg.channels_last and train.is_image
        self.model.to(self.device)
        if self.world > 1:  # batch statistics over the global batch, as one process with W times the batch sees them
            self.model = global_batchnorm(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.algorithm = prepared.algorithm
        split = prepared.split
        # before the optimizer: an algorithm may bring parameters of its own (ReMixMatch's rotation head)
        # the labeled stream yields positions in the labeled set (0..n-1): per-sample algorithm state is indexed by them
        self.labeled_pool = torch.as_tensor(split.labeled, dtype=torch.int64)
        setup_algorithm(self.algorithm, self.model, train.num_classes, len(split.unlabeled), cfg.iterations,
                        self.train_y[self.labeled_pool], cfg.label_noise, cfg.ema_decay)
        if self.world > 1:  # heads an algorithm builds in setup (ShrinkMatch's has BatchNorm); before the optimizer sees them
            global_batchnorm_in(self.algorithm)
        self.optimizer = make_optimizer(self.model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov,
                                        extra=self.algorithm.parameters())
        self.scheduler = cosine_schedule(self.optimizer, cfg.iterations)
        self.views = (augment.make_views(prepared.hflip) if train.is_image
                      else augment.make_feature_views(std.clamp(min=1e-6)))
        self.labeled_stream = IndexStream(np.arange(len(split.labeled)), cfg.batch_size, cfg.seed, self.rank, self.world)
        # the unlabeled stream yields positions in the pool (0..n-1): per-sample algorithm state is indexed by them
        self.unlabeled_pool = torch.as_tensor(split.unlabeled, dtype=torch.int64)
        self.unlabeled_stream = (
            IndexStream(np.arange(len(split.unlabeled)), cfg.batch_size * cfg.uratio, cfg.seed + 1, self.rank, self.world)
            if self.algorithm.uses_unlabeled else None
        )
        self.generator = torch.Generator(device=self.device)
        self.step = 0
        self.rows: list[dict] = []
        self.tally: dict[str, float] = {}  # sums since the last evaluation
        self.train_time = self.eval_time = self.checkpoint_time = 0.0
        self.out = Path(cfg.out) if cfg.out else None

    # ---- one step

    def _views(self, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        """This rank's share of one draw per name over the global batch ``x``; "weak#2", "strong#3" ... are
        further independent draws of the same view. Laid out for the model after sharding (a strided share of
        a channels-last batch is not channels-last, and the layout decides how pooling breaks ties)."""
        out = {}
        for name in names:
            v = shard(self.views[name.split("#", 1)[0]](x, self.generator), self.rank, self.world)
            out[name] = v.contiguous(memory_format=torch.channels_last) if self.channels_last else v
        return out

    def make_batch(self) -> tuple[dict, torch.Tensor | None]:
        # The augmentation RNG is re-seeded from (seed, step): a resumed run draws the same views. Every rank draws
        # the views of the whole global batch and keeps its share, so W processes see exactly the images one
        # process with a W times larger batch sees (augmentation is a few % of a step; this costs W times that).
        # What the algorithm then draws from the generator (mixup, rotations, VAT's start) is per rank.
        self.generator.manual_seed((self.cfg.seed * 1_000_003 + self.step) * 64)
        labeled_positions = self.labeled_stream.next_global()
        li = self.labeled_pool[labeled_positions]
        mine = shard(li, self.rank, self.world)
        batch = {"labeled": {"y": self.train_y[mine].to(self.device),
                             "index": shard(labeled_positions, self.rank, self.world).to(self.device)},
                 "unlabeled": {}, "generator": self.generator}
        batch["labeled"].update(self._views(self.train_x[li].to(self.device), self.algorithm.views["labeled"]))
        hidden = None
        if self.unlabeled_stream is not None:
            positions = self.unlabeled_stream.next_global()
            ui = self.unlabeled_pool[positions]
            batch["unlabeled"].update(self._views(self.train_x[ui].to(self.device), self.algorithm.views["unlabeled"]))
            batch["unlabeled"]["index"] = shard(positions, self.rank, self.world).to(self.device)
            hidden = self.train_y[shard(ui, self.rank, self.world)]  # for diagnostics only; never given to the algorithm
        if self.world > 1:  # the algorithm's own draws: independent per rank, still reproducible
            seeds = np.random.SeedSequence([self.cfg.seed, self.step, self.rank, 1]).generate_state(2, dtype=np.uint32)
            self.generator.manual_seed(int(seeds[0]) << 32 | int(seeds[1]))
        return batch, hidden

    def train_step(self, tally: dict[str, float]) -> None:
        self.model.train()
        batch, hidden = self.make_batch()
        out = self.algorithm.losses(self.model, batch, self.step)
        total = out["total"]
        scalars = {k: v for k, v in out.items() if v.dim() == 0}
        bad = next(((name, value) for name, value in scalars.items() if not torch.isfinite(value)), None)
        if self.world > 1 and any_rank(bad is not None) and bad is None:  # every rank stops, not just the one that saw it
            raise TrainingError(f"A loss became non-finite on another process at step {self.step}; "
                                "lower the learning rate or check the data.")
        if bad is not None:
            name, value = bad
            last = self.out / "last.pt" if self.out else None
            where = f"; the last good checkpoint is {last}" if last is not None and last.exists() else ""
            raise TrainingError(
                f"Loss '{name}' became {float(value.detach())} at step {self.step}{where}; lower the learning rate or check the data."
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
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

    # ---- evaluation and records

    def _predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, x, self.cfg.eval_batch_size, self.device, self.channels_last)

    def evaluate(self, tally: dict[str, float]) -> dict:
        n = max(1, tally.get("_n", 0))
        row: dict[str, Any] = {"step": self.step, "train_time_s": round(self.train_time, 2),
                               "lr": self.optimizer.param_groups[0]["lr"]}
        row["loss"] = tally.get("total", 0.0) / n
        for k in ("sup", "unsup", "mask_rate"):
            if k in tally:
                row[k] = tally[k] / n
        if tally.get("_pl_total"):
            row["pseudo_label_acc"] = tally["_pl_right"] / tally["_pl_total"]
        test = self.p.source.test
        if test is not None:
            row["test_acc"] = accuracy(test.y, self._predict(self.ema.module, test.x).argmax(1))
            row["test_acc_raw"] = accuracy(test.y, self._predict(self.model, test.x).argmax(1))
        if len(self.p.split.validation):
            val = self.p.split.validation
            row["val_acc"] = accuracy(self.train_y[val], self._predict(self.ema.module, self.train_x[val]).argmax(1))
        return row

    def checkpoint(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, streams, RNGs, tallies."""
        py_state = random.getstate()
        np_state = np.random.get_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.cfg.to_dict(),
            "classes": list(self.classes),
            "sample_shape": list(self.train_x.shape[1:]),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "streams": {
                "labeled": self.labeled_stream.state_dict(),
                "unlabeled": self.unlabeled_stream.state_dict() if self.unlabeled_stream else None,
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": [py_state[0], list(py_state[1]), py_state[2]],
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            },
            "rows": self.rows,
            "tally": self.tally,
            "timing": {"train_s": self.train_time, "eval_s": self.eval_time, "checkpoint_s": self.checkpoint_time},
        }

    def restore(self, ckpt: dict) -> None:
        """Continue from ``checkpoint()``'s output (already checked to belong to this config)."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.algorithm.load_state_dict(ckpt["algorithm"])
        self.labeled_stream.load_state_dict(ckpt["streams"]["labeled"])
        if self.unlabeled_stream is not None:
            self.unlabeled_stream.load_state_dict(ckpt["streams"]["unlabeled"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        self.step = int(ckpt["step"])
        self.rows = list(ckpt["rows"])
        self.tally = dict(ckpt["tally"])
        timing = ckpt["timing"]
        self.train_time, self.eval_time, self.checkpoint_time = timing["train_s"], timing["eval_s"], timing["checkpoint_s"]

    def save_checkpoint(self) -> None:
        """Write checkpoint-<step>.pt atomically, point last.pt at it, keep the newest ``keep_checkpoints``."""
        t0 = time.time()
        name = f"checkpoint-{self.step:08d}.pt"
        atomic_torch_save(self.out / name, self.checkpoint())
        link_tmp = self.out / f".last.pt.{os.getpid()}.tmp"
        link_tmp.unlink(missing_ok=True)
        os.link(self.out / name, link_tmp)  # same bytes, no second write
        os.replace(link_tmp, self.out / "last.pt")
        for old in sorted(self.out.glob("checkpoint-*.pt"))[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
        self.checkpoint_time += time.time() - t0

    def start_run_folder(self) -> None:
        """A fresh run: clear what an earlier run left (with --overwrite), write the config."""
        self.out.mkdir(parents=True, exist_ok=True)
        stale_files = [*self.out.glob("checkpoint-*.pt"), *self.out.glob(".*.tmp"),
                       *(self.out / f for f in RUN_FILES if f != "config.yaml")]
        for stale in stale_files:
            stale.unlink(missing_ok=True)
        atomic_write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))

    def run(self, resumed: bool = False) -> dict:
        """Train to ``cfg.iterations``; SIGINT/SIGTERM stop after the current step with a checkpoint.

        With several processes only rank 0 evaluates, writes files and returns the results
        (the other ranks return an empty dict); logged losses are rank 0's share of the batch.
        """
        cfg = self.cfg
        main = is_main_process()
        writing = self.out is not None and main
        barrier()  # every rank has checked its settings and data before rank 0 touches the run folder
        if writing and not resumed:
            self.start_run_folder()
        bar = None
        if self.progress and main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.iterations, initial=self.step, desc=f"{cfg.algorithm}", dynamic_ncols=True)
        last_acc = self.rows[-1].get("test_acc") if self.rows else None
        board = tensorboard_writer(self.out) if writing else None
        with StopSignals() as stop:
            while self.step < cfg.iterations:
                t0 = time.time()
                self.train_step(self.tally)
                self.train_time += time.time() - t0
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0 or self.step == cfg.iterations:
                        bar.set_postfix(self._postfix(last_acc), refresh=False)
                done = self.step == cfg.iterations
                stopping = any_rank(bool(stop.signal))  # all ranks stop at the same step
                if main and (self.step % cfg.eval_every == 0 or done):
                    t0 = time.time()
                    row = self.evaluate(self.tally)
                    self.rows.append(row)
                    last_acc = row.get("test_acc")
                    self.tally = {}
                    if writing:
                        _write_metrics(self.out / "metrics.csv", self.rows)
                    if board is not None:
                        for key, value in row.items():
                            if key != "step" and isinstance(value, (int, float)):
                                board.add_scalar(key, value, self.step)
                        board.flush()
                    self.eval_time += time.time() - t0
                if writing and (self.step % cfg.checkpoint_every == 0 or done or stopping):
                    self.save_checkpoint()
                if stopping and not done:
                    if bar is not None:
                        bar.close()
                    barrier()  # the checkpoint is on disk before any rank exits
                    raise TrainingInterrupted(stop.signal or signal.SIGTERM, self.step, self.out)
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        if not main:
            barrier()
            return {}
        results = self.results()
        if writing:
            atomic_write_json(self.out / "results.json", results)
        barrier()  # the other ranks end once the results are written
        return results

    def _postfix(self, last_acc: float | None) -> dict[str, str]:
        n = max(1, self.tally.get("_n", 0))
        post = {"loss": f"{self.tally.get('total', 0.0) / n:.3f}"}
        if "mask_rate" in self.tally:
            post["mask"] = f"{self.tally['mask_rate'] / n:.2f}"
        if last_acc is not None:
            post["test_acc"] = f"{last_acc:.4f}"
        return post

    def results(self) -> dict:
        cfg, split, source = self.cfg, self.p.split, self.p.source
        res: dict[str, Any] = {
            "fewlabels_version": __version__,
            "dataset": source.train.name,
            "data_origin": source.origin,
            "split_seed": cfg.seed,
            "num_labeled": len(split.labeled),
            "labels_per_class": cfg.labels_per_class,
            "num_unlabeled": len(split.unlabeled),
            "num_validation": len(split.validation),
            "model": cfg.model,
            "algorithm": cfg.algorithm,
            "algorithm_options": self.algorithm.hparams(),
            "iterations": self.step,
            "batch_size": cfg.batch_size,
            "uratio": cfg.uratio if self.unlabeled_stream is not None else 0,
            "wall_time_s": round(self.train_time + self.eval_time + self.checkpoint_time, 2),
            "train_time_s": round(self.train_time, 2),
            "eval_time_s": round(self.eval_time, 2),
            "checkpoint_time_s": round(self.checkpoint_time, 3),
            "machine": machine_info(self.device),
            **self.p.variants,
        }
        test = source.test
        if test is not None:
            res["test"] = summarize(self._predict(self.ema.module, test.x), test.y, self.classes)
            res["test_accuracy"] = res["test"]["accuracy"]  # final EMA model: the number to report
            res["test_accuracy_raw_model"] = self.rows[-1].get("test_acc_raw") if self.rows else None
            for name, logits in self.algorithm.inference_variants(self.ema.module, test.x).items():
                res[f"test_accuracy_{name}"] = accuracy(test.y, logits.argmax(1))  # e.g. SLA's aggregated inference
        if self.rows:
            last = self.rows[-1]
            for k in ("mask_rate", "pseudo_label_acc", "val_acc"):
                if last.get(k) is not None:
                    res[f"final_{k}"] = last[k]
        return res


def train(config: TrainConfig, source: DataSource | None = None, progress: bool = True,
          overwrite: bool = False) -> dict:
    """Train as ``config`` says and return the results record (also in ``out/results.json``)."""
    prepared = prepare(config, source, overwrite)
    return Trainer(prepared, progress).run()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint (a file, or a run folder's last.pt) safely, or explain why not."""
    path = Path(path)
    file = path / "last.pt" if path.is_dir() else path
    if not file.is_file():
        raise FewLabelsError(f"{path} holds no checkpoint (last.pt); it is not a fewlabels run folder, "
                             "or the run stopped before its first checkpoint.")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FewLabelsError(f"{file} cannot be read as a fewlabels checkpoint ({type(exc).__name__}); "
                             "it is corrupt or was written by another program.") from None
    needed = ("format", "config", "classes", "sample_shape", "step", "model", "ema", "optimizer", "scheduler",
              "algorithm", "streams", "rng", "rows", "tally", "timing")
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise FewLabelsError(f"{file} is not a fewlabels checkpoint.")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise FewLabelsError(f"{file} was written by fewlabels {ckpt.get('version', '?')} in checkpoint format "
                             f"{ckpt['format']}; this fewlabels {__version__} reads format {CHECKPOINT_FORMAT}.")
    missing = [k for k in needed if k not in ckpt]
    if missing or not isinstance(ckpt["config"], dict):
        what = f"has no '{missing[0]}'" if missing else "has a malformed config"
        raise FewLabelsError(f"{file} {what}; it is damaged or not a complete fewlabels checkpoint.")
    return ckpt


def resume(run_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Continue the run in ``run_dir`` from its last checkpoint, with the run's own configuration."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir if run_dir.is_dir() else run_dir)
    if not run_dir.is_dir():
        raise FewLabelsError(f"--resume needs a run folder, got the file {run_dir}.")
    saved = ckpt["config"]
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        try:
            on_disk = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError:
            raise FewLabelsError(f"{config_file} is not valid YAML; restore it or delete it to use the checkpoint's settings.") from None
        if not isinstance(on_disk, dict):
            raise FewLabelsError(f"{config_file} must hold a mapping of settings; restore it or delete it.")
        differs = [k for k in ("dataset", "model", "algorithm", "labels_per_class", "num_labels", "seed", "label_noise",
                               "noise_type", "imbalance_ratio")
                   if on_disk.get(k) != saved.get(k)]
        if differs:
            k = differs[0]
            raise FewLabelsError(f"{run_dir} mixes two runs: config.yaml has {k}={on_disk.get(k)!r} but last.pt was "
                                 f"trained with {k}={saved.get(k)!r}; resume from the folder the checkpoint came from.")
    config = TrainConfig.from_dict(saved)
    config.out = str(run_dir)
    for stray in run_dir.glob(".*.tmp"):  # a write cut short by a kill
        stray.unlink(missing_ok=True)
    trainer = Trainer(prepare(config, overwrite=True), progress)
    if list(trainer.classes) != list(ckpt["classes"]) or list(trainer.train_x.shape[1:]) != list(ckpt["sample_shape"]):
        raise FewLabelsError(f"{run_dir} was trained on data with classes {ckpt['classes']} and sample shape "
                             f"{tuple(ckpt['sample_shape'])}, but {config.dataset} now gives {trainer.classes} and "
                             f"{tuple(trainer.train_x.shape[1:])}; resume with the same data.")
    try:
        trainer.restore(ckpt)
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise FewLabelsError(f"{run_dir / 'last.pt'} does not fit model '{config.model}' ({first[:160]}).") from None
    return trainer.run(resumed=True)


__all__ = ["Prepared", "Trainer", "TrainingError", "TrainingInterrupted", "prepare", "resume", "train"]
