"""Training-step speed of cnn and cnn-wide: eager fp32, channels-last, channels-last + bf16 autocast, as ratios.

    python bench/precision.py [--steps 8] [--batch 960]

All settings in one process, interleaved round by round (a shared machine's load hits each alike); the
median images/s per setting and its ratio to eager fp32. Writes bench/results/ceiling/precision-microbench.json. It decides
``fewlabels.train.precision``'s ``auto`` rule: bf16 only where it measures a clear gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine  # noqa: E402

SETTINGS = {"fp32": (False, "fp32"), "channels-last": (True, "fp32"), "channels-last + bf16": (True, "bf16")}


def step_seconds(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 precision: str) -> float:
    from fewlabels.losses import at_least_fp32
    from fewlabels.train.precision import autocast

    t0 = time.perf_counter()
    with autocast(precision, torch.device("cpu")):
        logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(at_least_fp32(logits), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def measure(name: str, steps: int, batch: int) -> dict:
    from fewlabels import models

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    runs = {}
    for setting, (cl, _) in SETTINGS.items():
        torch.manual_seed(0)
        model = models.get(name, (1, 28, 28), 10).train()
        xs = x
        if cl:
            model = model.to(memory_format=torch.channels_last)
            xs = x.contiguous(memory_format=torch.channels_last)
        runs[setting] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), xs, [])
    for i in range(steps + 2):  # two warm-up rounds
        for setting, (model, opt, xs, times) in runs.items():
            t = step_seconds(model, opt, xs, y, SETTINGS[setting][1])
            if i >= 2:
                times.append(t)
    ips = {s: batch / statistics.median(r[3]) for s, r in runs.items()}
    return {"model": name, "batch": batch, "steps": steps,
            "images_per_s": {s: round(v, 1) for s, v in ips.items()},
            "ratio_to_fp32": {s: round(v / ips["fp32"], 3) for s, v in ips.items()}}


def main() -> None:
    from fewlabels.train.precision import cpu_bf16_flags

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=960)
    args = parser.parse_args()
    rows = [measure(name, args.steps, args.batch) for name in ("cnn", "cnn-wide")]
    record = {"bench": "precision", "title": "Training-step speed by precision (CPU)", "command": command(),
              "machine": {**machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "bf16_flags": cpu_bf16_flags()}, "rows": rows}
    (RESULTS / "ceiling").mkdir(parents=True, exist_ok=True)
    (RESULTS / "ceiling" / "precision-microbench.json").write_text(json.dumps(record, indent=1) + "\n")
    for r in rows:
        print(r["model"], r["images_per_s"], r["ratio_to_fp32"])


if __name__ == "__main__":
    main()
