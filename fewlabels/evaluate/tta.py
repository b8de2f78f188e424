"""Flip test-time augmentation: the mean of the logits of an image and of its horizontal mirror.

Only where the run's own views flip images (``--augment`` chose hflip, or ``hand`` with the dataset's
flip): there the network was taught that a mirror keeps the class, and averaging the two halves
the noise of its decision (the largest single gain in Page's fast-training series). Where a mirror
changes the label (digits, letters) the views never flip and TTA is refused, not applied quietly.

The mode is resolved once, when the run is built (``resolve_for``), and recorded in the config
(``tta``: ``hflip`` or ``none``), so evaluate, predict, the API and the export read one setting.
The plain figure is always reported; the flip-averaged one sits beside it (``test_accuracy_tta``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fewlabels.errors import FewLabelsError

MODES = ("auto", "none", "hflip")


def flips_in_views(hflip: bool, symmetries: list[tuple[int, bool]] | None) -> bool:
    """Whether a run's views apply the horizontal flip (the weak view's own flip, or hflip in the drawn group)."""
    return bool(hflip) or (symmetries is not None and (0, True) in [tuple(e) for e in symmetries])


def resolve(asked: str, label_preserving: bool, where: str = "this run") -> tuple[str, str]:
    """(``hflip`` or ``none``, why) for ``--tta asked``; ``hflip`` where the views do not flip is refused."""
    if asked == "none":
        return "none", "asked for"
    if asked == "hflip" and not label_preserving:
        raise FewLabelsError(f"--tta hflip averages over horizontal mirrors, but {where}'s views never flip images (a mirror "
                             "may change the label, as for digits); leave --tta auto or none.")
    if label_preserving:
        return "hflip", "asked for" if asked == "hflip" else "auto: the views flip images"
    return "none", "auto: the views never flip images"


def resolve_for(trainer: Any) -> str:
    """The Trainer's hook: resolve ``cfg.tta`` from the run's views and write it back (config.yaml records it)."""
    cfg, p = trainer.cfg, trainer.p
    if not p.source.train.is_image:
        mode = "none" if cfg.tta != "hflip" else resolve("hflip", False, cfg.dataset)[0]
    else:
        mode, _ = resolve(cfg.tta, flips_in_views(p.hflip, p.symmetries), cfg.dataset)
    cfg.tta = mode
    return mode


def recorded(config: Any, asked: str = "auto") -> str:
    """The mode a trained run's evaluate/predict use: its recorded one under ``auto``; ``none`` always allowed.

    A run from before ``--tta`` (config ``auto``, never resolved) gets none: its views were not recorded as flipping.
    """
    own = getattr(config, "tta", "auto")
    if asked == "auto":
        return own if own in ("none", "hflip") else "none"
    return resolve(asked, own == "hflip", "the run")[0]


def flip_average(logits_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of the logits of ``x`` and of ``x`` mirrored left-right ((N, C, H, W) images)."""
    return (logits_of(x) + logits_of(x.flip(-1))) / 2


def tta_logits(logits_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str) -> torch.Tensor:
    return flip_average(logits_of, x) if mode == "hflip" else logits_of(x)


class FlipAverage(nn.Module):
    """The same averaging as a module, for the exported model (returns logits, as the net it wraps)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) + self.net(torch.flip(x, [-1]))) / 2


def tta_figures(trainer: Any) -> dict[str, Any]:
    """results.json's flip-averaged test accuracy of the final EMA model, beside the plain one (none without TTA)."""
    from fewlabels.evaluate.metrics import accuracy

    test = trainer.p.source.test
    if trainer.cfg.tta != "hflip" or test is None:
        return {"tta": trainer.cfg.tta}
    t0 = time.time()
    logits = flip_average(lambda x: trainer.predict(trainer.ema.module, x), test.x)
    return {"tta": "hflip", "test_accuracy_tta": accuracy(test.y, logits.argmax(1)),
            "tta_predict_s": round(time.time() - t0, 2)}


# ---- a trained run as it is served: its recorded test-time augmentation, then its temperature


def temperature_of(run: Any) -> float:
    """The run's fitted temperature (results.json), 1 where none was fitted."""
    return float((getattr(run, "results", None) or {}).get("temperature") or 1.0)


class ServedRun:
    """``run`` (a ``fewlabels.Run``) whose ``logits`` are flip-averaged under ``mode`` and divided by its temperature.

    The argmax is that of the flip-averaged logits; softmax of these logits gives the calibrated probabilities.
    Every other attribute is the run's own.
    """

    def __init__(self, run: Any, mode: str, temperature: float = 1.0) -> None:
        self.run, self.mode, self.temperature = run, mode, temperature

    def __getattr__(self, name: str) -> Any:
        return getattr(self.run, name)

    def logits(self, x: Any) -> torch.Tensor:
        x = self.run.as_input(x)  # (N, C, H, W) first: a user's (N, H, W, C) array must flip its width, not its channels
        return tta_logits(self.run.logits, x, self.mode) / self.temperature


def served(run: Any, asked: str = "auto") -> ServedRun:
    """The run as predict serves it: ``--tta asked`` against its recorded mode, and its temperature."""
    return ServedRun(run, recorded(run.config, asked) if run.is_image else "none", temperature_of(run))


class ScaledLogits(nn.Module):
    """The exported model's serving: flip-average (where the run records it) and divide by the temperature."""

    def __init__(self, net: nn.Module, flip: bool, temperature: float) -> None:
        super().__init__()
        self.net = FlipAverage(net) if flip else net
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature


def served_module(net: nn.Module, run: Any) -> nn.Module:
    return ScaledLogits(net, run.is_image and recorded(run.config) == "hflip", temperature_of(run))


def served_figures(run: Any, x: torch.Tensor, y: torch.Tensor, asked: str, batch_size: int) -> dict[str, Any]:
    """evaluate's figures beside the plain ones: the flip-averaged accuracy and the ECE after the temperature."""
    from fewlabels.evaluate.calibration import expected_calibration_error, scaled_probs

    serving = served(run, asked)
    logits = torch.cat([serving.logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    out: dict[str, Any] = {"tta": serving.mode, "temperature": serving.temperature,
                           "ece_calibrated": expected_calibration_error(scaled_probs(logits, 1.0), y)}
    if serving.mode == "hflip":
        out["accuracy_tta"] = int((logits.argmax(1) == y).sum()) / len(y)
    return out


__all__ = ["MODES", "FlipAverage", "ScaledLogits", "ServedRun", "flip_average", "flips_in_views", "recorded", "resolve",
           "resolve_for", "served", "served_figures", "served_module", "temperature_of", "tta_figures", "tta_logits"]
