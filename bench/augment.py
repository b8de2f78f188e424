"""Augmentation throughput: fewlabels' batched engine vs a per-sample PIL pipeline.

The PIL reference is the way research code feeds FixMatch: one image at a time,
random crop (reflect pad 12.5%) + flip for the weak view; the same plus 3 random
RandAugment ops with random magnitudes and Cutout for the strong view; then to a
float tensor. Both produce a weak and a strong view of every sample, in the same
run, on the same machine. Also measures the share of a FixMatch training step
(small CNN, batch 64, uratio 7) spent making the augmented views.

    python bench/augment.py
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, machine  # noqa: E402

from fewlabels.augment import Strong, Weak  # noqa: E402
from fewlabels.utils.io import atomic_write_json  # noqa: E402
from fewlabels.utils.memory import keep_freed_memory  # noqa: E402

# ---- the per-sample PIL reference (written for this bench, in the style of research code)


def _enhance(kind):
    return lambda img, v: kind(img).enhance(1.0 + v * random.choice((-1, 1)) * 0.95)


def _affine(img, matrix, fill):
    return img.transform(img.size, Image.AFFINE, matrix, fillcolor=fill)


def _pil_ops(fill):
    return [
        lambda img, v: img,
        lambda img, v: ImageOps.autocontrast(img),
        lambda img, v: ImageOps.equalize(img),
        lambda img, v: img.rotate(30 * v * random.choice((-1, 1)), fillcolor=fill),
        lambda img, v: ImageOps.solarize(img, int(256 - 256 * v)),
        _enhance(ImageEnhance.Color),
        lambda img, v: ImageOps.posterize(img, 8 - int(round(4 * v))),
        _enhance(ImageEnhance.Contrast),
        _enhance(ImageEnhance.Brightness),
        _enhance(ImageEnhance.Sharpness),
        lambda img, v: _affine(img, (1, 0.3 * v * random.choice((-1, 1)), 0, 0, 1, 0), fill),
        lambda img, v: _affine(img, (1, 0, 0, 0.3 * v * random.choice((-1, 1)), 1, 0), fill),
        lambda img, v: _affine(img, (1, 0, 0.3 * v * img.size[0] * random.choice((-1, 1)), 0, 1, 0), fill),
        lambda img, v: _affine(img, (1, 0, 0, 0, 1, 0.3 * v * img.size[1] * random.choice((-1, 1))), fill),
    ]


N_OPS = 3  # RandAugment ops per strong view, in the reference and in ours alike


class PILReference:
    def __init__(self, size: int, channels: int, n_ops: int = N_OPS) -> None:
        self.pad = int(round(0.125 * size))
        self.fill = 128 if channels == 1 else (128, 128, 128)
        self.ops = _pil_ops(self.fill)
        self.n_ops = n_ops

    def weak(self, img: Image.Image) -> Image.Image:
        if random.random() < 0.5:
            img = ImageOps.mirror(img)
        a = np.asarray(img)
        pad = ((self.pad, self.pad), (self.pad, self.pad)) + (((0, 0),) if a.ndim == 3 else ())
        a = np.pad(a, pad, mode="reflect")
        h, w = img.size[1], img.size[0]
        y, x = random.randint(0, 2 * self.pad), random.randint(0, 2 * self.pad)
        return Image.fromarray(a[y : y + h, x : x + w])

    def strong(self, img: Image.Image) -> Image.Image:
        img = self.weak(img)
        for op in random.choices(self.ops, k=self.n_ops):
            img = op(img, random.random())
        size = random.random() * 0.5 * img.size[0]
        cx, cy = random.random() * img.size[0], random.random() * img.size[1]
        img = img.copy()
        box = (int(cx - size / 2), int(cy - size / 2), int(cx + size / 2), int(cy + size / 2))
        img.paste(self.fill, box)
        return img

    @staticmethod
    def to_tensor(img: Image.Image) -> torch.Tensor:
        a = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def time_pil(images: list[Image.Image], size: int, channels: int) -> float:
    ref = PILReference(size, channels)
    start = time.perf_counter()
    for img in images:
        ref.to_tensor(ref.weak(img))
        ref.to_tensor(ref.strong(img))
    return len(images) / (time.perf_counter() - start)


def time_batched(x: torch.Tensor, repeats: int) -> float:
    weak, strong = Weak(), Strong(n_ops=N_OPS)  # the reference's op count (training's default is FixMatch's 2)
    gen = torch.Generator().manual_seed(0)
    weak(x, gen), strong(x, gen)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        weak(x, gen)
        strong(x, gen)
    return repeats * len(x) / (time.perf_counter() - start)


def sample_images(size: int, channels: int, n: int) -> torch.Tensor:
    """Fashion-MNIST images when present (resized and tinted for 3 channels), else textured noise."""
    from fewlabels import data

    try:
        x = data.load("fashion-mnist").train.x[:n]
    except Exception:
        x = data.load("digits").train.x[:n]
        x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]
    x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
    if channels == 3:
        tint = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.4
        x = x * tint
    return x.round().clamp(0, 255).to(torch.uint8)


def step_share(iterations: int) -> dict:
    """Time a FixMatch step on Fashion-MNIST and the part of it spent making views."""
    from fewlabels.train import TrainConfig, prepare
    from fewlabels.train.loop import Trainer

    cfg = TrainConfig(dataset="fashion-mnist", algorithm="fixmatch", model="cnn", iterations=iterations,
                      batch_size=64, uratio=7, eval_every=10**9)
    try:
        trainer = Trainer(prepare(cfg), progress=False)
    except Exception:
        cfg.dataset = "digits"
        trainer = Trainer(prepare(cfg), progress=False)
    spent = {"views": 0.0}
    original = trainer.batches._views

    def timed_views(x, names):
        t0 = time.perf_counter()
        out = original(x, names)
        spent["views"] += time.perf_counter() - t0
        return out

    trainer.batches._views = timed_views
    tally: dict = {}
    for _ in range(5):  # warm-up
        trainer.train_step(tally)
    spent["views"] = 0.0
    start = time.perf_counter()
    for _ in range(iterations):
        trainer.train_step(tally)
    total = time.perf_counter() - start
    return {"dataset": cfg.dataset, "steps": iterations, "step_time_ms": 1000 * total / iterations,
            "augmentation_ms": 1000 * spent["views"] / iterations, "augmentation_share": spent["views"] / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=448)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--pil-images", type=int, default=2000)
    ap.add_argument("--step-iterations", type=int, default=60)
    ap.add_argument("--out", default=str(RESULTS / "augment.json"))
    args = ap.parse_args()
    random.seed(0)
    keep_freed_memory()  # as the trainer does: both pipelines run in this process with it
    default_threads = torch.get_num_threads()
    rows = []
    for size, channels in ((28, 1), (32, 3)):
        x = sample_images(size, channels, max(args.batch, args.pil_images))
        mode = "L" if channels == 1 else "RGB"
        images = [Image.fromarray(a[0] if channels == 1 else a.transpose(1, 2, 0), mode)
                  for a in x[: args.pil_images].numpy()]
        pil = time_pil(images, size, channels)
        row = {"size": f"{size}x{size}x{channels}", "batch": args.batch, "pil_samples_per_s": pil}
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            ours = time_batched(x[: args.batch], args.repeats)
            row[f"fewlabels_{threads}t_samples_per_s"] = ours
            row[f"speedup_{threads}t"] = ours / pil
        torch.set_num_threads(default_threads)
        rows.append(row)
        print(row, flush=True)
    share = step_share(args.step_iterations)
    print(share, flush=True)
    record = {"bench": "augment", "title": "Augmentation throughput (weak + strong view per sample)",
              "command": command(), "machine": machine(), "rows": rows, "step": share,
              "default_threads": default_threads, "n_ops": N_OPS, "kept_freed_memory": keep_freed_memory()}
    atomic_write_json(args.out, record)
    if Path(args.out).parent == RESULTS:  # a smoke run elsewhere leaves BENCHMARKS.md alone
        from report import write_benchmarks

        write_benchmarks()


if __name__ == "__main__":
    main()
