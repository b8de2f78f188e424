"""The Algorithm interface: one batch in, named losses out.

An algorithm owns no loop, optimizer, logging or checkpointing. It says which views
of the labeled and unlabeled samples it needs, and turns a batch of them into a
dict of scalar losses (``total`` is what is minimised) plus diagnostics.
Per-batch vectors ``pseudo_labels`` and ``mask`` (for the unlabeled batch), when
returned, let the loop score pseudo-labels against labels hidden from training.

The batch: ``batch["labeled"]`` holds ``y`` and one tensor per labeled view;
``batch["unlabeled"]`` one tensor per unlabeled view and ``index`` (positions in the
unlabeled pool, for per-sample state); ``batch["generator"]`` is the step's seeded
``torch.Generator`` for any randomness of the algorithm's own (mixup, VAT), so resumed
runs draw the same numbers.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from fewlabels.algorithms.components.options import Option, check_declared, check_values, init_parameters, refuse_unknown
from fewlabels.errors import FewLabelsError
from fewlabels.losses import cross_entropy

Batch = dict[str, Any]


@dataclass(frozen=True)
class SetupContext:
    """What the loop knows when an algorithm is set up: the only argument of ``Algorithm.setup``.

    Frozen, so an algorithm cannot change what the loop (and the other parts) see. Fields an
    algorithm needs beyond the always-present ones are named in its ``requires``, and ``prepare``
    refuses a run that cannot provide them in one sentence before any work starts.
    """

    model: nn.Module  # the student, on ``device``; read its ``feature_dim`` for heads, deep-copy it for peers
    num_classes: int
    num_labeled: int
    num_unlabeled: int
    total_steps: int
    labeled_y: torch.Tensor  # the labeled set's labels as training sees them (noisy where asked), indexed by batch["labeled"]["index"]
    label_noise: float = 0.0  # the configured noise rate of the labeled set (0: clean)
    ema_decay: float = 0.999  # the loop's EMA decay, for algorithms that keep an EMA of their own
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    sample_shape: tuple[int, ...] = ()
    encoder: nn.Module | None = None  # a pretrained encoder the run starts from (``--init``)
    teacher: nn.Module | None = None  # a frozen teacher network (distillation)
    pool: tuple[torch.Tensor, torch.Tensor] | None = None  # (labeled, unlabeled) samples on the CPU, for graph methods
    label_smoothing: float = 0.0  # of the supervised (labeled) cross-entropy terms (TrainConfig.label_smoothing)


OPTIONAL_CONTEXT = ("encoder", "teacher", "pool")


class Algorithm(nn.Module):
    """One batch in, named losses out; heads, predictors and target networks are submodules.

    Being an ``nn.Module`` gives parameters, state, device moves, several-process conversion
    and checkpoints from PyTorch. Subclasses call ``super().__init__()`` first in ``__init__``
    and create their submodules and buffers in ``setup`` (they depend on the model and data).
    State that is not a tensor (counters, Python lists) goes through PyTorch's one hook for it,
    ``get_extra_state`` / ``set_extra_state``, so ``state_dict`` stays the whole story.
    """

    name: ClassVar[str] = ""
    views: ClassVar[dict[str, list[str]]] = {"labeled": ["weak"], "unlabeled": []}
    requires: ClassVar[tuple[str, ...]] = ()  # fields of SetupContext that must not be None (e.g. "teacher")
    options: ClassVar[dict[str, Option]] = {}  # one declaration per __init__ parameter (components/options.py)
    # Without a validation split, a temperature from the unlabeled pool's weak views (evaluate/pool_calibration.py)
    # is served only for a method it was checked on and found to lower test ECE on 3 seeds or more (FixMatch,
    # FlexMatch, FreeMatch, SoftMatch, UDA, distillation); on Pi-model, Mean Teacher,
    # Pseudo-Label, VAT, MixMatch and ReMixMatch it raised test ECE on every digits seed (bench/notes/calibration.md).
    pool_calibration: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Hold the declarations against ``__init__`` (at import), and check every value given before ``__init__`` runs."""
        super().__init_subclass__(**kwargs)
        check_declared(cls, cls.options)
        if "__init__" in cls.__dict__:
            cls.__init__ = _checking(cls.__dict__["__init__"], cls.options)  # type: ignore[method-assign]

    @property
    def uses_labeled(self) -> bool:
        return bool(self.views.get("labeled"))

    @property
    def uses_unlabeled(self) -> bool:
        return bool(self.views.get("unlabeled"))

    label_smoothing: float = 0.0  # set by ``take_run_settings``; 0: the supervised terms' targets are the labels

    def take_run_settings(self, ctx: SetupContext) -> None:
        """The run's settings every algorithm applies the same way; the loop calls it before ``setup`` (which
        subclasses override without calling up). Today: the label smoothing of the supervised terms."""
        self.label_smoothing = float(ctx.label_smoothing)

    def supervised_ce(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The cross-entropy of a supervised term, against the given labels (hard, or mixed as MixMatch mixes them),
        with the run's label smoothing. Pseudo-label, consistency and distillation terms use ``cross_entropy``."""
        return cross_entropy(logits, targets, reduction=reduction, label_smoothing=self.label_smoothing)

    def setup(self, ctx: SetupContext) -> None:
        """Called once by the loop before training, for state that depends on the data or model."""

    def check_data(self, sample_shape: tuple[int, ...], num_classes: int, hflip: bool = False) -> None:
        """Refuse data the algorithm cannot use (one FewLabelsError sentence); called before any training work.

        ``hflip``: whether the weak augmentation flips images at random (so flips carry no information).
        """

    def after_step(self, model: nn.Module) -> None:
        """Called after each optimizer step (EMA teachers update here)."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups with their own settings, e.g. ``[{"params": probe, "lr": 0.1, "weight_decay": 0.0}]``.

        Keys other than ``params`` override the run's optimizer settings for that group (and the
        schedule scales the group's own lr). Trainable parameters of the algorithm not listed here
        train with the model's recipe.
        """
        return []

    def monitors(self) -> list[Any]:
        """Extra evaluation monitors (``fewlabels.evaluate.monitors.Monitor``) this algorithm brings."""
        return []

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def inference_variants(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra test-time predictions (N, C logits) by name, scored beside the single-pass model (SLA's aggregate)."""
        return {}

    def hparams(self) -> dict[str, Any]:
        """The constructor arguments, as given (for config files and run records)."""
        return {k: getattr(self, k) for k in init_parameters(type(self).__init__)}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} is called through losses(model, batch, step), not as a module.")


def _checking(init: Callable[..., None], declared: dict[str, Option]) -> Callable[..., None]:
    """``init`` behind the check of its arguments against their declarations (the sentence names the algorithm)."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def checked_init(self: Algorithm, *args: Any, **kwargs: Any) -> None:
        refuse_unknown(self.name, kwargs, declared)
        check_values(self.name, signature.bind(self, *args, **kwargs).arguments, declared)
        init(self, *args, **kwargs)

    return checked_init


def check_context(algorithm: Algorithm, ctx: SetupContext) -> None:
    """Refuse a context that lacks what the algorithm ``requires``, in one sentence."""
    for name in algorithm.requires:
        if getattr(ctx, name, None) is None:
            raise FewLabelsError(f"{algorithm.name} needs a {name}; " + _HOW_TO_GIVE.get(name, f"give it a {name}.") )


_HOW_TO_GIVE = {
    "teacher": "give one with --option teacher=RUN_DIR (a finished run folder).",
    "encoder": "start from a run with --init RUN_DIR.",
}


# ---- registry

_REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted(_REGISTRY)


def options(name: str) -> dict[str, Any]:
    """The hyper-parameters an algorithm takes, with their defaults."""
    return init_parameters(get_class(name).__init__)


def get_class(name: str) -> type[Algorithm]:
    """The algorithm class of ``name``, in any case (FixMatch, fixmatch)."""
    name = name.lower() if isinstance(name, str) else name
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise FewLabelsError(f"Unknown algorithm '{name}': {hint}choose one of {', '.join(names())}.")
    return _REGISTRY[name]


def get(name: str, **hparams: Any) -> Algorithm:
    """Build an algorithm by name; unknown hyper-parameters are refused with the closest valid one."""
    cls = get_class(name)
    refuse_unknown(cls.name, hparams, cls.options)
    return cls(**hparams)
