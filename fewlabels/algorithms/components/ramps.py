"""Ramp-up schedules of unlabeled weights, given as fractions of the run."""

from __future__ import annotations

import math


def ramp_steps(fraction: float, total_steps: int) -> int:
    """A ramp-up given as a fraction of the run, in steps."""
    return int(round(fraction * total_steps))


def linear_rampup(step: int, length: int) -> float:
    """0 -> 1 linearly over ``length`` steps (1 at once when length is 0)."""
    return 1.0 if length <= 0 else min(1.0, step / length)


def sigmoid_rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2), the ramp of the Pi-model and Mean Teacher papers."""
    if length <= 0:
        return 1.0
    t = min(1.0, step / length)
    return math.exp(-5.0 * (1.0 - t) ** 2)
