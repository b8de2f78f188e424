"""The training configuration: one flat dataclass, validated before any work starts."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from fewlabels.data.resize import MIN_IMAGE_SIDE
from fewlabels.errors import FewLabelsError


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A field with its help text (and other hints for the command line) as metadata; ``fewlabels train`` builds its flags from them.

    Metadata keys: ``help``; ``choices``; ``cli=False`` for a field with no flag of its own; ``bounds=(low, high)``
    for a whole number, checked by ``validate`` and named in the error.
    """
    return field(default=default, metadata={"help": help, **meta})


# Sane limits of the counts, far above any real run and inside 64 bits (a step count past the sky trains for ever;
# a seed past 2**64 overflows the generators). Memory is checked separately, against the machine.
MAX_STEPS = 100_000_000
MAX_SAMPLES = 100_000_000
MAX_SEED = 2**32 - 1
MAX_LR = 100.0  # beyond any learning rate that trains; larger values (3.5e38) overflow float32 inside the optimizer
MAX_WEIGHT_DECAY = 1.0
OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.03, "adam": 1e-3, "adamw": 1e-3}  # the lr of a run that names none (recorded as the number)


def bounds_text(low: int, high: int) -> str:
    """How a bounded count is described in an error: "at least 1 and at most 100000000"."""
    return f"{'0 or more' if low == 0 else f'at least {low}'} and at most {high}"


def bounds_of(name: str) -> tuple[int, int]:
    """The (low, high) bounds of TrainConfig field ``name``; commands use them for their flags of the same meaning."""
    return {f.name: f.metadata["bounds"] for f in dataclasses.fields(TrainConfig) if "bounds" in f.metadata}[name]


@dataclass
class TrainConfig:
    # data
    dataset: str = setting("fashion-mnist", "a built-in dataset, an image folder (class subfolders, optional unlabeled/) "
                           "or an .npz file")
    data_dir: str | None = setting(None, "folder holding the dataset's files")
    labels_per_class: int | None = setting(None, "labeled samples per class (default: every label the data has; "
                                           "fully labeled data keeps 4 per class and uses the rest unlabeled)",
                                           bounds=(1, MAX_SAMPLES))
    num_labels: int | None = setting(None, "total labeled samples, spread over the classes", bounds=(1, MAX_SAMPLES))
    val_per_class: int = setting(0, "labeled samples per class held out for validation", bounds=(0, MAX_SAMPLES))
    seed: int = setting(0, "seeds the split, the model and the augmentation", bounds=(0, MAX_SEED))
    image_size: int | None = setting(None, "longer side images are resized to once, at load (default: at most 32 on a "
                                     "CPU, the images' own size on a GPU)", bounds=(MIN_IMAGE_SIDE, 4096))
    hflip: bool | None = setting(None, "flip images horizontally at random in the weak view "
                                 "(default: the dataset decides; digits and letters are never flipped)")
    augment: str = setting("auto", "which flips and quarter turns the weak and strong views apply: auto (those "
                           "'fewlabels symmetries' finds keep the label, on this split; cached), hand (the dataset decides "
                           "flips; no turns), all (every flip and rotation of the square), or names such as hflip,rot90")
    augment_choice: dict[str, Any] | None = setting(None, "what --augment auto chose (recorded; a resume reuses it)",
                                                    cli=False)
    # data variants (data/variants.py's apply_variants, called by train/preparation.py, applies them in its order)
    label_noise: float = setting(0.0, "fraction of the labeled set's labels flipped, exactly, seeded")
    noise_type: str = setting("symmetric", "how noisy labels are flipped: symmetric (to any other class) or "
                              "asymmetric (class c to c + 1 mod K)", choices=("symmetric", "asymmetric"))
    imbalance_ratio: float = setting(1.0, "head / tail class size of the long-tailed labeled and unlabeled sets (1: as split)")
    # method
    algorithm: str | None = setting(None, "the training method (default: the data decides, fixmatch for images, "
                                    "labelprop for feature vectors)")
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the algorithm's hyper-parameters by name"})
    model: str | None = setting(None, "the network (default: the data decides, cnn for images, mlp for feature vectors; "
                                "wrn-28-2 for images of 32 px or more on a GPU)")
    init: str | None = setting(None, "start from the backbone of this run folder or state_dict file (a pretrained encoder)")
    init_head: bool = setting(False, "with --init, also take its classifier head (the classes must match)")
    freeze_backbone: bool = setting(False, "train the head only, on the --init encoder's frozen features (linear probing)")
    backbone_lr_scale: float = setting(1.0, "the backbone's learning rate as a fraction of --lr (fine-tuning gently)")
    # budget and optimisation (FixMatch's recipe)
    iterations: int = setting(3000, "training steps", bounds=(1, MAX_STEPS))
    batch_size: int = setting(64, "labeled batch size", bounds=(1, MAX_SAMPLES))
    uratio: int = setting(7, "unlabeled batch = uratio x batch size", bounds=(1, 1_000_000))
    optimizer: str = setting("sgd", "sgd (momentum, Nesterov as --nesterov says), adam or adamw (Adam with decoupled "
                             "weight decay)", choices=OPTIMIZERS)
    lookahead: int = setting(0, "lookahead every k steps: slow weights move halfway to the fast ones and the fast "
                             "restart there (0: off)", bounds=(0, MAX_STEPS))
    lr: float | None = setting(None, "learning rate at the start of the cosine schedule (default: 0.03 for sgd, 0.001 "
                               "for adam and adamw; recorded as the number used)")
    momentum: float = setting(0.9, "SGD momentum (an algorithm's own momentum is one of its options; adam keeps its "
                              "betas)")
    weight_decay: float = setting(5e-4, "weight decay of the weights (never of norms and biases): L2 in the gradient "
                                  "for sgd and adam, decoupled for adamw (each step shrinks weights by lr x decay)")
    nesterov: bool = setting(True, "Nesterov momentum")
    bn_bias_lr_scale: float = setting(1.0, "learning rate of every one-dimensional parameter (BatchNorm weights and "
                                      "biases, and every layer's bias) as a multiple of --lr")
    bn_momentum: float | None = setting(None, "momentum of every BatchNorm's running statistics, in (0, 1) (PyTorch's "
                                        "meaning: the weight of the new batch; default: the model's own)")
    label_smoothing: float = setting(0.0, "label smoothing of the supervised (labeled) cross-entropy terms, in [0, 1); "
                                     "pseudo-label and distillation terms keep hard targets")
    whiten_init: bool = setting(False, "initialise the first convolution with PCA-whitening filters of image patches "
                                "from the training pool (labeled + unlabeled; images only; --init wins over it)")
    ema_decay: float = setting(0.999, "decay of the EMA model that is evaluated and reported")
    # evaluation and output
    eval_every: int = setting(500, "steps between evaluations", bounds=(1, MAX_STEPS))
    eval_batch_size: int = setting(1024, "batch size of evaluation", bounds=(1, MAX_SAMPLES))
    checkpoint_every: int = setting(500, "steps between checkpoints", bounds=(1, MAX_STEPS))
    keep_checkpoints: int = setting(1, "how many checkpoints to keep", bounds=(1, 1000))
    out: str | None = setting(None, "run folder (default runs/<dataset>-<algorithm>-<labels>-s<seed>)")
    # execution
    device: str = setting("auto", "auto, cpu or cuda[:N]")
    channels_last: bool = setting(True, "channels-last memory format for image models (faster convolutions on CPU)")
    deterministic: bool = setting(False, "deterministic kernels only (bit-identical resume on GPUs too)")
    precision: str = setting("fp32", "arithmetic of the training forward pass: fp32, bf16 (autocast; weights, losses and "
                             "checkpoints stay fp32) or auto (bf16 where the device has bf16 units and a measured gain; "
                             "recorded as the choice made)", choices=("fp32", "bf16", "auto"))
    tta: str = setting("auto", "test-time augmentation of the reported extra figure and of evaluate/predict: auto (the "
                       "horizontal flip where the run's views treat it as label-preserving), hflip, or none",
                       choices=("auto", "none", "hflip"))

    def __post_init__(self) -> None:
        """Names are case-insensitive (--algorithm FixMatch, --model CNN, --dataset Digits): kept in the registries' case.

        No lr given: the optimizer's default, set here so every config (flags, files, pipeline stages) holds a number.
        """
        for name in ("algorithm", "model", "device", "noise_type", "precision", "tta", "optimizer"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, getattr(self, name).lower())
        if self.lr is None and isinstance(self.optimizer, str) and self.optimizer in DEFAULT_LR:  # recorded as the number
            self.lr = DEFAULT_LR[self.optimizer]
        if isinstance(self.dataset, str) and self.dataset != self.dataset.lower():
            from pathlib import Path

            from fewlabels.data import BUILTIN

            if self.dataset.lower() in BUILTIN and not Path(self.dataset).exists():
                self.dataset = self.dataset.lower()

    def validate(self) -> None:
        """Types and ranges of every setting, so a bad value fails here with one sentence, not deep inside."""

        def fail(name: str, what: str) -> None:
            raise FewLabelsError(f"{name} must be {what}, got {getattr(self, name)!r}.")

        def is_int(v: Any) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        for name in ("dataset", "device"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                fail(name, "a non-empty string")
        for name in ("algorithm", "model"):
            if getattr(self, name) is not None and (not isinstance(getattr(self, name), str) or not getattr(self, name)):
                fail(name, f"a{'n' if name == 'algorithm' else ''} {name} name (or empty: the data decides)")
        for name in ("data_dir", "out"):  # an empty path is no folder: a run written "to ''" is lost
            if getattr(self, name) is not None and (not isinstance(getattr(self, name), str) or not getattr(self, name)):
                fail(name, "a path (a non-empty string)")
        for f in dataclasses.fields(self):
            if "bounds" in f.metadata:
                value, (low, high) = getattr(self, f.name), f.metadata["bounds"]
                optional = f.name in ("labels_per_class", "num_labels", "image_size")  # None: given by the data
                if value is None and optional:
                    continue
                if not is_int(value) or not low <= value <= high:
                    fail(f.name, f"{'empty or ' if optional else ''}a whole number of {bounds_text(low, high)}")
        for name in ("nesterov", "channels_last", "deterministic", "init_head", "freeze_backbone", "whiten_init"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "true or false")
        if self.hflip is not None and not isinstance(self.hflip, bool):
            fail("hflip", "true, false or empty")
        if not isinstance(self.options, dict):
            fail("options", "a mapping of algorithm hyper-parameters")
        if not isinstance(self.augment, str) or not all(n.strip() for n in self.augment.split(",")):  # ',' or 'a,,b'
            fail("augment", "auto, hand, all or transformation names such as hflip,rot90 (none of them empty)")
        if self.augment_choice is not None and not isinstance(self.augment_choice, dict):
            fail("augment_choice", "a mapping recorded by --augment auto (or empty)")
        if self.optimizer not in OPTIMIZERS:  # before lr: its default is the optimizer's
            fail("optimizer", " or ".join(repr(c) for c in OPTIMIZERS))
        if self.lr is None:  # set to None after construction: the optimizer's default, as __post_init__ gives it
            self.lr = DEFAULT_LR[self.optimizer]
        for name, low, high, what in (("label_smoothing", 0.0, 1.0, "in [0, 1)"),
                                      ("bn_momentum", 0.0, 1.0, "empty (the model's own) or in (0, 1)"),
                                      ("bn_bias_lr_scale", 0.0, MAX_LR, f"greater than 0 and at most {MAX_LR:g}")):
            value = getattr(self, name)
            if value is None and name == "bn_momentum":
                continue
            number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not number or not (low <= value if name == "label_smoothing" else low < value) or \
                    not (value <= high if name == "bn_bias_lr_scale" else value < high):
                fail(name, what)
        if self.whiten_init and self.model == "mlp":
            fail("whiten_init", "false for the mlp (whitening initialises an image model's first convolution)")
        for name in ("lr", "weight_decay", "momentum", "ema_decay"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                fail(name, "a finite number")
        if not 0 < self.lr <= MAX_LR:
            fail("lr", f"greater than 0 and at most {MAX_LR:g}")
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            fail("weight_decay", f"0 or more and at most {MAX_WEIGHT_DECAY:g}")
        if not 0 <= self.momentum < 1:
            fail("momentum", "in [0, 1) (1 or more makes SGD diverge)")
        if not 0.0 <= self.ema_decay < 1.0:
            fail("ema_decay", "in [0, 1)")
        for name in ("label_noise", "imbalance_ratio"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                fail(name, "a finite number")
        if not 0.0 <= self.label_noise < 1.0:
            fail("label_noise", "a fraction of the labels in [0, 1)")
        if self.noise_type not in ("symmetric", "asymmetric"):
            fail("noise_type", "'symmetric' or 'asymmetric'")
        if self.imbalance_ratio < 1.0:
            fail("imbalance_ratio", "at least 1 (head class size / tail class size; 1 = balanced)")
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            fail("init", "a path to a run folder or a state_dict file")
        if (self.freeze_backbone or self.init_head) and self.init is None:
            fail("freeze_backbone" if self.freeze_backbone else "init_head", "used with --init (there is no encoder to keep)")
        if not isinstance(self.backbone_lr_scale, numbers.Real) or isinstance(self.backbone_lr_scale, bool) or \
                not math.isfinite(self.backbone_lr_scale) or not 0 <= self.backbone_lr_scale <= MAX_LR:
            fail("backbone_lr_scale", f"a number of 0 or more and at most {MAX_LR:g}")
        for f in dataclasses.fields(self):  # a setting with choices (--precision, --tta): one of them
            if f.name != "noise_type" and "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]:
                fail(f.name, " or ".join(repr(c) for c in f.metadata["choices"]))
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            fail("device", "'auto', 'cpu' or 'cuda[:N]'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise FewLabelsError(f"Unknown config key '{key}'{hint}")
        config = cls(**d)
        config.validate()
        return config
