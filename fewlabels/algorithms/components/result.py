"""The result of one step: the reserved keys of the dict ``Algorithm.losses`` returns, and a builder for it.

Reserved names: ``total`` (what is minimised), ``sup`` and ``unsup`` (the labeled and unlabeled
terms), ``mask_rate`` (the share of unlabeled samples that count), and the per-batch vectors
``pseudo_labels`` and ``mask`` (for the unlabeled batch), which the loop scores against labels
hidden from training. Every other entry is a diagnostic: a 0-dim tensor the loop logs under
its name (to metrics.csv), so name it for a reader.
"""

from __future__ import annotations

import torch

TOTAL, SUP, UNSUP, MASK_RATE, PSEUDO_LABELS, MASK = "total", "sup", "unsup", "mask_rate", "pseudo_labels", "mask"
RESERVED = (TOTAL, SUP, UNSUP, MASK_RATE, PSEUDO_LABELS, MASK)
PER_SAMPLE = (PSEUDO_LABELS, MASK)  # vectors over the unlabeled batch; every other value is a scalar


def step_result(total: torch.Tensor, *, sup: torch.Tensor | None = None, unsup: torch.Tensor | None = None,
                mask_rate: torch.Tensor | None = None, pseudo_labels: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, **diagnostics: torch.Tensor) -> dict[str, torch.Tensor]:
    """The step's dict: the reserved entries given (None ones left out), then the named diagnostics (0-dim tensors)."""
    out = {TOTAL: total, SUP: sup, UNSUP: unsup, MASK_RATE: mask_rate}
    for name, value in diagnostics.items():
        if not (isinstance(value, torch.Tensor) and value.dim() == 0):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"diagnostic {name!r} must be a 0-dim tensor (it is logged as one number), got {shape}")
        out[name] = value
    out[PSEUDO_LABELS], out[MASK] = pseudo_labels, mask
    return {k: v for k, v in out.items() if v is not None}
