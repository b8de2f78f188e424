"""How much memory one training step needs, estimated before anything is written, against what the machine has.

A batch far beyond the machine (``--batch-size 1000000``, ``--uratio 100000``) otherwise fails in the
allocator after minutes of work, or takes the machine down with it. The estimate is a floor, not a
forecast: the float views of the global batch, the activations a forward pass of one sample keeps
(measured with hooks, times the images of the step), and the weights with their gradients, momentum and
EMA copy. Autograd keeps more than that, so a step the estimate refuses cannot fit; one it accepts may
still be tight.

Resized images (``--image-size 4096`` on 8 px digits) are checked before they are made (``check_resize``):
the copy at the new size, which the run holds throughout, and the resize's float working copy alone can be
tens of GiB; an image folder's, resized as it is read, from its files' count and headers before any is decoded.
The step is then checked at the new size, against the memory the resized data left.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from fewlabels.errors import FewLabelsError
from fewlabels.utils.memory import available_bytes, human

PARAM_COPIES = 4  # weights, gradients, SGD momentum, the EMA model


@dataclass
class Footprint:
    images: int  # images (or feature rows) one step draws, over every view
    bytes: int  # the floor of the step's memory in one process


def activation_numel(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Elements of every leaf module's output for one sample: what a forward pass keeps for backward, at least.

    Measured on a copy of ``model`` on the meta device (shapes only, no memory): two 4096 px images would
    otherwise take tens of GiB in the very check that is to refuse them.
    """
    model = copy.deepcopy(model).to("meta")
    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output[0].numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((2, *sample_shape), device="meta"))  # two samples: batch statistics need more than one
    finally:
        for h in handles:
            h.remove()
    return total


def step_footprint(model: nn.Module, sample_shape: tuple[int, ...], views: dict[str, list[str]], batch_size: int,
                   uratio: int, world: int = 1) -> Footprint:
    """The floor of one step's memory for ``views`` (an algorithm's) at this batch, in one of ``world`` processes."""
    labeled = batch_size * len(views.get("labeled") or [])
    unlabeled = batch_size * uratio * len(views.get("unlabeled") or [])
    images = labeled + unlabeled
    per_sample = 1
    for s in sample_shape:
        per_sample *= int(s)
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    floats = images * per_sample + images * activation_numel(model, sample_shape) // max(1, world) + PARAM_COPIES * params
    return Footprint(images, 4 * floats)


def check_memory(model: nn.Module, sample_shape: tuple[int, ...], views: dict[str, list[str]], batch_size: int,
                 uratio: int, device: torch.device, world: int = 1) -> Footprint:
    """Refuse, in one sentence with both numbers, a step that cannot fit in the memory ``device`` has available.

    Called once the data is loaded (and resized), so the memory it takes is no longer available: not counted twice.
    """
    need = step_footprint(model, sample_shape, views, batch_size, uratio, world)
    have = available_bytes(device)
    if have is not None and need.bytes > have:
        where = "GPU memory free" if device.type == "cuda" else "memory available"
        advice = "lower --batch-size or --uratio" + (", or --image-size" if len(sample_shape) == 3 else "")
        raise FewLabelsError(f"One training step needs at least {human(need.bytes)} ({need.images} images of "
                             f"{'x'.join(map(str, sample_shape))} with batch size {batch_size} and uratio {uratio}), but "
                             f"this machine has {human(have)} of {where}; {advice}.")
    return need
