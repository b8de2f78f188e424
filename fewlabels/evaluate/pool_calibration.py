"""A temperature for a run without a validation split: the unlabeled pool's augmentation ensemble.

With 4 labels per class nothing labeled is held out, and the final model has memorized its own labeled images,
even their strongly augmented views (86% right on them where the test set is 64%; a head cross-fitted on their
frozen features is 100% right out of fold): a T fitted on them sharpens instead of softening (bench/calibration.py).
The unlabeled pool comes from the test distribution and was never labeled: how much the model's prediction for a
pool image moves across the run's label-keeping (weak) views measures how unsure it should be. T is fitted so that
softmax(logits / T) of the image as predict serves it (with the run's TTA) matches the mean softmax over 4 weak
views, by cross-entropy over up to 2,000 pool images.

Weak, not strong views: the strong view (RandAugment + Cutout) destroys 8x8 digits, and its ensemble asks for
2.3x the test set's own T there. The weak-view T lowered the test ECE on every semi-supervised run of the benchmark
(digits: to within 0.01 of the test-fitted T's); on Fashion-MNIST it is a partial fix (0.23 -> 0.19, where the
strong-view T, recorded beside as the uncertainty's other side, came close to the test set's own). A method that
never read the pool gets none: a supervised model's pool ensemble asked for 1.4x the test set's T. Nor does a
method it was not checked on (``Algorithm.pool_calibration``): checked on the whole consistency family, it raised
test ECE on every digits seed of Pi-model, Mean Teacher, Pseudo-Label, VAT, MixMatch and ReMixMatch.

Guards, each said in ``temperature_note``: never sharpen (a T below 1 is kept at 1: without labels there is no
evidence the model is underconfident); a pool under 200 images gives no T; a wide bootstrap interval (pool
images resampled) keeps its lower end, the smallest correction the evidence supports.
"""

from __future__ import annotations

from typing import Any

import torch

from fewlabels.evaluate.calibration import search_temperature

METHOD = "unlabeled pool: weak-view ensemble"
POOL_IMAGES = 2000  # pool images drawn (seeded): the estimate's spread at 2,000 is ~1% of T
VIEW_DRAWS = 4  # weak views per image whose mean softmax is the target
MIN_POOL = 200  # fewer pool images than this: no estimate
BOOTSTRAP = 50
WIDE = 1.25  # an interval whose upper end exceeds its lower end by this factor is too unsure: take the lower end


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    """Mean cross-entropy of softmax(logits / T) against soft ``targets`` (rows summing to 1), in float64."""
    return float(-(targets.double() * torch.log_softmax(logits.double() / temperature, dim=1)).sum(1).mean())


def fit_temperature_to(logits: torch.Tensor, targets: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The T in [low, high] whose softmax(logits / T) is closest to the soft ``targets`` in cross-entropy.

    Convex in 1/T as the NLL is (hard targets are the one-hot case), so the same golden-section search on log T.
    """
    if len(logits) == 0:
        return 1.0
    z, q = logits.double(), targets.double()
    return search_temperature(lambda temperature: soft_cross_entropy(z, q, temperature), low, high, 60)


def ensemble_targets(view_logits: torch.Tensor) -> torch.Tensor:
    """(V, N, K) logits of V views of N images -> (N, K): the mean of their softmaxes."""
    return torch.softmax(view_logits.double(), dim=-1).mean(0)


def pool_estimate(clean_logits: torch.Tensor, view_logits: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """T from the clean logits and the (V, N, K) view logits of the same pool images, with its guards and interval.

    Returns ``temperature`` (None when the pool is too small), ``temperature_interval`` (10th and 90th percentile
    over pool resamples), ``temperature_estimate`` (the raw fit) and a ``temperature_note`` when a guard acted.
    """
    n = len(clean_logits)
    if n < MIN_POOL:
        return {"temperature": None, "temperature_fitted_on": None, "temperature_fit_n": n,
                "temperature_note": f"no validation split, and only {n} unlabeled images to estimate a temperature from "
                                    f"(at least {MIN_POOL} are needed); pass --val-per-class to fit one"}
    q = ensemble_targets(view_logits)
    estimate = fit_temperature_to(clean_logits, q)
    g = torch.Generator().manual_seed(seed)
    fits = sorted(fit_temperature_to(clean_logits[i], q[i])
                  for i in (torch.randint(0, n, (n,), generator=g) for _ in range(BOOTSTRAP)))
    lo, hi = fits[int(0.1 * (BOOTSTRAP - 1))], fits[int(0.9 * (BOOTSTRAP - 1))]
    t, notes = estimate, []
    if hi > WIDE * lo:
        t = lo
        notes.append(f"the estimate is unsure (T between {lo:.3g} and {hi:.3g}): its lower end is kept")
    if t < 1.0:
        t = 1.0
        notes.append("the pool shows no overconfidence; without labels T is never below 1")
    out: dict[str, Any] = {"temperature": round(t, 4), "temperature_fitted_on": METHOD, "temperature_fit_n": n,
                           "temperature_estimate": round(estimate, 4), "temperature_interval": [round(lo, 4), round(hi, 4)]}
    if notes:
        out["temperature_note"] = "; ".join(notes)
    return out


def pool_evidence(trainer: Any, logits_of: Any, draws: int = VIEW_DRAWS, images: int = POOL_IMAGES,
                  view: str = "weak") -> tuple[torch.Tensor, torch.Tensor]:
    """(clean logits as served, (draws, N, K) logits of ``view``) of up to ``images`` pool images (seeded by the run).

    ``trainer``: train/loop.py's Trainer (untyped); ``logits_of(x)``: the final model's served logits (its TTA).
    Only pool images are read: neither the test set nor any label.
    """
    pool = torch.as_tensor(trainer.p.split.unlabeled, dtype=torch.int64)
    g = torch.Generator().manual_seed(int(trainer.cfg.seed))
    pick = pool[torch.randperm(len(pool), generator=g)[:images]]
    x = trainer.train_x[pick]
    draw = trainer.batches.views[view]
    clean = logits_of(x)
    views = torch.stack([logits_of(draw(x, g)) for _ in range(draws)]) if len(x) else clean.unsqueeze(0)
    return clean, views


def pool_temperature(trainer: Any, logits_of: Any) -> dict[str, Any]:
    """results.json's temperature for a run without a validation split (see the module's docstring)."""
    if not trainer.algorithm.uses_unlabeled:
        return {"temperature": None, "temperature_fitted_on": None,
                "temperature_note": "no validation split (--val-per-class) to fit a temperature on, and the method "
                                    "never read the unlabeled pool (the estimate without labels reads it)"}
    if not trainer.algorithm.pool_calibration:
        return {"temperature": None, "temperature_fitted_on": None,
                "temperature_note": f"no validation split (--val-per-class) to fit a temperature on, and the estimate "
                                    f"without labels is not checked on {trainer.algorithm.name} (on some methods it "
                                    "made the probabilities worse): they are the network's own"}
    clean, views = pool_evidence(trainer, logits_of)
    out = pool_estimate(clean, views, int(trainer.cfg.seed))
    if out["temperature"] is not None and "strong" in trainer.batches.views:
        # the other side of the uncertainty: strong views soften most (the test set's T lay between the two on the
        # benchmark's semi-supervised runs), recorded beside the adopted figure, never served
        clean, views = pool_evidence(trainer, logits_of, view="strong")
        out["temperature_strong_views"] = round(fit_temperature_to(clean, ensemble_targets(views)), 4)
    return out


__all__ = ["METHOD", "ensemble_targets", "fit_temperature_to", "pool_estimate", "pool_evidence", "pool_temperature",
           "soft_cross_entropy"]
