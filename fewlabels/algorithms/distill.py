"""Distillation into a student on the unlabeled pool: function matching.

    L = T^2 KL(softmax(t(x) / T) || softmax(s(x) / T)) over unlabeled and labeled images
        + lambda_ce CE(s(x_l), y_l)

Teacher and student see the *same* augmented view of each image ("Knowledge distillation: A
good teacher is patient and consistent", Beyer et al.: consistent views and long schedules
matter more than anything else); ``mixup`` > 0 mixes the unlabeled views (the same mixed image
for both), as that paper's function matching does. SimCLRv2 ("Big Self-Supervised Models are
Strong Semi-Supervised Learners") distils its fine-tuned teacher this way, with T = 1, on the
unlabeled pool. The teacher is a finished run folder (``teacher=RUN_DIR``), loaded with
``weights_only=True``, frozen and in eval mode; the student is the run's ``--model``, the same
size (self-distillation) or smaller. Defaults: T = 1, lambda_ce = 1, no mixup.

A foundation encoder's head (an encoder pipeline's teacher stage) is no network run per step: its
logits of every image are looked up by the batch's positions (``foundation/teacher.py``), the clean
image's output as the encoder saw it, matched by the student's own view of that image.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fewlabels.algorithms.components.base import Algorithm, Batch, SetupContext, register
from fewlabels.algorithms.components.mixing import mixup
from fewlabels.algorithms.components.options import NON_NEGATIVE, POSITIVE, RUN_FOLDER, Option
from fewlabels.algorithms.components.result import step_result
from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.metrics import accuracy


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(p_teacher^T || p_student^T) per sample, averaged (Hinton et al.'s scaling keeps gradients comparable)."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1).mean() * temperature**2


@register
class Distill(Algorithm):
    name = "distill"
    views = {"labeled": ["weak"], "unlabeled": ["strong"]}
    pool_calibration = True  # the pool temperature was checked on it (components/base.py)
    requires = ("teacher",)
    options = {
        "teacher": Option(RUN_FOLDER, "the finished run whose predictions the student matches"),
        "temperature": Option(POSITIVE, "softmax temperature of teacher and student"),
        "lambda_ce": Option(NON_NEGATIVE, "weight of the cross-entropy on the labels"),
        "mixup": Option(NON_NEGATIVE, "Beta(mixup, mixup) parameter of mixup between images (0: off)"),
    }

    def __init__(self, teacher: str = "", temperature: float = 1.0, lambda_ce: float = 1.0, mixup: float = 0.0) -> None:
        super().__init__()
        self.teacher, self.temperature, self.lambda_ce, self.mixup = teacher, temperature, lambda_ce, mixup

    def setup(self, ctx: SetupContext) -> None:
        self.teacher_model = ctx.teacher.requires_grad_(False).eval()
        if getattr(self.teacher_model, "looks_up", False) and self.mixup > 0:
            raise FewLabelsError(f"The teacher {self.teacher} is a foundation encoder's head, whose logits are looked up "
                                 "per image: there is none for a mixed image; leave mixup at 0.")

    def losses(self, model: nn.Module, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        lab, unl = batch["labeled"], batch["unlabeled"]
        x_u = unl["strong"]
        if self.mixup > 0:
            x_u = mixup(x_u.float(), torch.zeros(len(x_u), 1, device=x_u.device), self.mixup, batch["generator"])[0]
            if unl["strong"].dtype == torch.uint8:
                x_u = x_u.round().to(torch.uint8)  # the models take 0..255 bytes as they came
        x = torch.cat([lab["weak"], x_u.to(lab["weak"].dtype)])
        with torch.no_grad():
            if getattr(self.teacher_model, "looks_up", False):
                teacher_logits = self.teacher_model.lookup(lab["index"], unl["index"])
            else:
                teacher_logits, _ = self.teacher_model(x)
        logits, _ = model(x)
        n = len(lab["weak"])
        kl = distillation_kl(logits, teacher_logits, self.temperature)
        ce = self.supervised_ce(logits[:n], lab["y"])  # the labeled term: --label-smoothing applies
        agreement = (logits[n:].argmax(1) == teacher_logits[n:].argmax(1)).float().mean()
        return step_result(kl + self.lambda_ce * ce, sup=ce, unsup=kl, teacher_agreement=agreement)

    def monitors(self) -> list[Any]:
        if getattr(self.teacher_model, "looks_up", False):
            return [LookedUpTeacher(self.teacher_model)]
        return [TeacherAndStudent(self.teacher_model)]


class LookedUpTeacher:
    """A looked-up teacher's test accuracy (its logits of the test images, from the encoder's embeddings)."""

    def __init__(self, teacher: nn.Module) -> None:
        self.teacher = teacher

    def __call__(self, ctx) -> dict[str, float]:
        test = self.teacher.test_logits
        if ctx.test_x is None or test is None or len(test) != len(ctx.test_y):
            return {}
        return {"teacher_acc": accuracy(ctx.test_y, test.cpu().argmax(1))}


class TeacherAndStudent:
    """The teacher's test accuracy and both models' prediction speed (images/s), measured once on the test set."""

    def __init__(self, teacher: nn.Module) -> None:
        self.teacher = teacher
        self.figures: dict[str, float] | None = None

    def __call__(self, ctx) -> dict[str, float]:
        if ctx.test_x is None:
            return {}
        if self.figures is None:
            x = ctx.test_x[:2048]
            speeds = {}
            for name, m in (("teacher", self.teacher), ("student", ctx.ema_model)):
                ctx.predict(m, x[:64])  # warm-up
                t0 = time.perf_counter()
                ctx.predict(m, x)
                speeds[f"{name}_images_per_s"] = len(x) / (time.perf_counter() - t0)
            self.figures = {"teacher_acc": accuracy(ctx.test_y, ctx.logits(self.teacher, "test").argmax(1)), **speeds}
        return dict(self.figures)
