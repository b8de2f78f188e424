"""Photos at a CPU-sized resolution: the time of a training step on a folder of 128x128 RGB JPEGs vs Fashion-MNIST.

The folder (1,300 synthetic photos in 10 classes, 5 labeled per class, the rest in unlabeled/) is made
once, seeded. Each setting trains FixMatch with the defaults for a few steps in this process; the step
time is the median over steps after a warm-up, and the ratios are measured in the same run, so a busy
machine slows every row alike. Rows: Fashion-MNIST (28x28 gray), the photos with the default size (32
px on a CPU), and the photos at their own 128 px (``--image-size 128``, what the defaults did before).
Writes bench/results/photos.json and regenerates BENCHMARKS.md.

    python bench/photos.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, machine  # noqa: E402

from fewlabels.utils.io import atomic_write_json  # noqa: E402


def make_photos(root: Path, n: int = 1300, classes: int = 10, labeled: int = 5, size: int = 128) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        c = i % classes
        a = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
        a[:, :, c % 3] += 100 + 10 * c
        where = root / f"class{c}" if i < classes * labeled else root / "unlabeled"
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(where / f"{i}.jpg", quality=90)
    return root


def step_seconds(dataset: str, steps: int, warmup: int, **settings) -> tuple[float, tuple[int, ...]]:
    from fewlabels.train import TrainConfig, Trainer, prepare

    config = TrainConfig(dataset=dataset, iterations=steps + warmup, eval_every=10**6, checkpoint_every=10**6, **settings)
    trainer = Trainer(prepare(config), progress=False)
    times = []
    for _ in range(steps + warmup):
        started = time.perf_counter()
        trainer.train_step(trainer.tally)
        times.append(time.perf_counter() - started)
    return statistics.median(times[warmup:]), tuple(trainer.p.source.train.sample_shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "photos.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        photos = str(make_photos(Path(tmp) / "photos"))
        rows = []
        for name, dataset, settings in (("Fashion-MNIST, defaults", "fashion-mnist", {}),
                                        ("128x128 RGB photos, defaults", photos, {}),
                                        ("128x128 RGB photos, --image-size 128", photos, {"image_size": 128})):
            seconds, shape = step_seconds(dataset, args.steps, args.warmup, augment="hand", **settings)
            rows.append({"setting": name, "sample_shape": list(shape), "step_s": round(seconds, 4)})
            print(f"{name}: {shape}, {seconds:.3f} s a step", flush=True)
    base = rows[0]["step_s"]
    for row in rows:
        row["ratio_to_fashion_mnist"] = round(row["step_s"] / base, 2)
    record = {"bench": "photos", "title": "Photos at a CPU-sized resolution: step time vs Fashion-MNIST",
              "command": command(), "machine": machine(), "steps": args.steps, "rows": rows}
    atomic_write_json(args.out, record)
    from report import write_benchmarks

    write_benchmarks()


if __name__ == "__main__":
    main()
