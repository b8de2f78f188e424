"""A run's total time, estimated from its first steps and said in a sentence when it matters."""

from __future__ import annotations

from fewlabels.train.config import TrainConfig
from fewlabels.utils.durations import LONG_S, duration_text

WARMUP_STEPS = 2  # the first steps pay for allocation and kernel selection: not counted
MEASURED_STEPS = 8
WORTH_SAYING_S = 60.0  # a run with less left than this is not worth a line
LONG_RUN_S = LONG_S  # past this the estimate is said even without a progress bar, with ways to shorten the run


class RunEstimate:
    """Times steps WARMUP_STEPS+1 .. WARMUP_STEPS+MEASURED_STEPS of this session, then says the total once."""

    def __init__(self, config: TrainConfig, first_step: int) -> None:
        self.config, self.first_step = config, first_step
        self.seconds = 0.0
        self.done = False

    def add(self, step: int, seconds: float) -> str | None:
        """Record one step's time; returns the sentence once enough steps were timed (then None again)."""
        counted = step - self.first_step - WARMUP_STEPS
        if self.done or counted < 1:
            return None
        self.seconds += seconds
        if counted < MEASURED_STEPS and step < self.config.iterations:
            return None
        self.done = True
        per_step = self.seconds / counted
        steps_left = self.config.iterations - step
        return sentence(per_step, steps_left, self.config) if per_step * steps_left >= WORTH_SAYING_S else None


def sentence(per_step: float, steps_left: int, config: TrainConfig) -> str:
    """'About 16.3 h left (2,990 steps at 19.6 s a step)', with ways to shorten a long run."""
    left = per_step * steps_left
    text = f"about {duration_text(left)} of training left ({steps_left:,} steps at {per_step:.2f} s a step)"
    if left >= LONG_RUN_S:
        size = f" (now {config.image_size} px)" if config.image_size else ""
        text += (f"; to shorten it give fewer --iterations, a smaller --image-size{size}, --batch-size "
                 f"(now {config.batch_size}) or --uratio (now {config.uratio}), or a GPU")
    return text


def is_long(text: str) -> bool:
    return "to shorten it" in text
