"""A local stand-in for a foundation teacher (issue 30): how close a distilled ``cnn`` student gets to its teacher.

    python bench/foundation_teacher.py [--seeds 0 1 2] [--encoder /work/tmp-helper2/standin-vit]

A real DINOv2 cannot be downloaded here, so the teacher is a small ``transformers`` ViT trained on Fashion-MNIST's
*training* images and labels (never the test set), saved with ``save_pretrained`` and a ``ViTImageProcessor`` like
any hub model: it plays the part of an encoder that already knows the domain. The folder is rebuilt (seeded,
a fixed number of steps) when it is missing; it is ~2.2 MB, so it is not committed.

Each seed runs ``fewlabels pipeline --dataset fashion-mnist --labels-per-class 4 --encoder FOLDER --seed S`` and
records the teacher's test accuracy (stage 1: a head on the frozen embeddings) beside the distilled ``cnn``
student's, one JSON per run under bench/results/foundation-teacher/ (a rerun skips finished seeds), collected in
bench/results/foundation_teacher.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine, mean_std, notes_lines  # noqa: E402

STANDIN = Path("/work/tmp-helper2/standin-vit")
# the stand-in's architecture: a narrow ViT at Fashion-MNIST's 28 px, 7-px patches (16 tokens + CLS), small enough
# to train in ~10 CPU-minutes (600 steps of 128: 1.3 epochs) on a shared 2-core machine
STANDIN_CONFIG = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                      image_size=28, patch_size=7, num_channels=3)
STANDIN_TRAINING = dict(steps=600, batch=128, lr=2e-3, weight_decay=0.05, warmup=50, seed=0, threads=1)


def _fmnist_train() -> tuple[torch.Tensor, torch.Tensor]:
    from fewlabels import data

    source = data.load("fashion-mnist")
    return source.train.x, source.train.y


def _as_pixels(x: torch.Tensor, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) as the stand-in's processor gives them: grayscale as RGB, x/255, (x - 0.5) / 0.5."""
    return ((x.float() / 255 - mean) / std).expand(-1, 3, -1, -1)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random horizontal flip and a shift of up to 2 px (zero padding): enough to keep a small ViT from memorizing."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()  # one shift per batch: cheap, and enough here
    return padded[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def build_standin(folder: Path = STANDIN, log=lambda line: print(line, flush=True)) -> Path:
    """Train the stand-in encoder supervised on Fashion-MNIST's training labels and save it as a transformers model
    folder (ViTModel, its pooler trained as the classifier's input, + ViTImageProcessor at 28 px). Seeded."""
    import transformers

    cfg = STANDIN_TRAINING
    torch.set_num_threads(cfg["threads"])  # small matrices: a second thread mostly waits (and spins) on a busy machine
    torch.manual_seed(cfg["seed"])
    g = torch.Generator().manual_seed(cfg["seed"])
    config = transformers.ViTConfig(**STANDIN_CONFIG)
    encoder = transformers.ViTModel(config)  # with its pooler: the embedding fewlabels takes is pooler_output
    head = torch.nn.Linear(config.hidden_size, 10)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg["warmup"]) * 0.5 * (
        1 + math.cos(math.pi * min(s, cfg["steps"]) / cfg["steps"])))
    x, y = _fmnist_train()
    encoder.train()
    t0, seen = time.perf_counter(), 0
    for step in range(cfg["steps"]):
        idx = torch.randint(0, len(x), (cfg["batch"],), generator=g)
        pixels = _as_pixels(_augment(x[idx], g))
        logits = head(encoder(pixel_values=pixels).pooler_output)
        loss = torch.nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        seen += len(idx)
        if step % 50 == 0 or step == cfg["steps"] - 1:
            log(f"stand-in step {step}/{cfg['steps']} loss {loss.item():.3f} ({seen / (time.perf_counter() - t0):.0f} img/s)")
    encoder.eval()
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 28, "width": 28}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3).save_pretrained(folder)
    (folder / "standin.json").write_text(json.dumps({"config": STANDIN_CONFIG, "training": cfg,
                                                     "train_seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    return folder


def run_seed(encoder: Path, seed: int, runs: Path, extra: list[str]) -> dict:
    """One ``fewlabels pipeline --encoder`` run: the head's and the distilled student's test accuracy."""
    out = runs / f"seed{seed}"
    argv = [sys.executable, "-m", "fewlabels", "pipeline", "--dataset", "fashion-mnist", "--labels-per-class", "4",
            "--encoder", str(encoder), "--seed", str(seed), "--out", str(out), "--quiet", *extra]
    if (out / "pipeline.json").is_file():  # a run cut short: finish it
        argv = [sys.executable, "-m", "fewlabels", "pipeline", "--resume", str(out), "--quiet"]
    env = {**os.environ, "FEWLABELS_CACHE": str(runs / "cache")}  # the embeddings, computed once for every seed
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    head = json.loads((out / "1-teacher" / "results.json").read_text())
    student = json.loads((out / "2-distill" / "results.json").read_text())
    return {"seed": seed, "teacher_accuracy": head["test_accuracy"], "student_accuracy": student["test_accuracy"],
            "gap_points": 100 * (head["test_accuracy"] - student["test_accuracy"]),
            "student_model": json.loads((out / "pipeline.json").read_text())["stages"][1]["config"]["model"],
            "distill_iterations": student.get("iterations"), "wall_time_s": round(time.perf_counter() - t0, 1),
            "cpu_time_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "argv": argv[2:]}


def table(record: dict) -> str:
    m, rows = record["machine"], record["rows"]
    teacher = [r["teacher_accuracy"] for r in rows]
    student = [r["student_accuracy"] for r in rows]
    gaps = [-r["gap_points"] for r in rows]  # student minus teacher: positive where the student is ahead
    lines = [f"## {record['title']}", "",
             f"The teacher: a {record['standin']['config']['num_hidden_layers']}-layer, "
             f"{record['standin']['config']['hidden_size']}-wide ViT (patch {record['standin']['config']['patch_size']}, "
             f"28 px) trained supervised on Fashion-MNIST's training labels for {record['standin']['training']['steps']} "
             "steps, saved as a `transformers` model: a stand-in for a foundation encoder that knows the domain (a real "
             "DINOv2 cannot be downloaded here). `fewlabels pipeline --encoder` with 4 labels per class: stage 1 a "
             "labelprop head on its embeddings, stage 2 distilled into the student on the unlabeled pool. Test accuracy "
             f"%; {m['cpu']}, {m['cores']} cores (shared), torch {m['torch']}, {m['date']}.", "",
             f"Reproduce: `{record['command']}`", "",
             "| seed | student | distill steps | teacher (head on embeddings) | distilled student | student − teacher "
             "(points) | CPU time (min) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['student_model']} | {r['distill_iterations']} | {100 * r['teacher_accuracy']:.2f} | "
                     f"{100 * r['student_accuracy']:.2f} | {-r['gap_points']:+.2f} | {r['cpu_time_s'] / 60:.1f} |")
    lines.append(f"| mean ± std ({len(rows)}) | | | {_pct(teacher)} | {_pct(student)} | "
                 f"{mean_std(gaps)[0]:+.2f} ± {mean_std(gaps)[1]:.2f} | |")
    return "\n".join(lines + notes_lines("foundation_teacher")) + "\n"


def _pct(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", type=Path, default=STANDIN)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("/work/tmp-helper2/teacher-runs"),
                        help="where the pipeline folders and the embedding cache go")
    parser.add_argument("--build-only", action="store_true", help="train and save the stand-in encoder, then stop")
    parser.add_argument("extra", nargs="*", help="more pipeline flags, after --")
    args = parser.parse_args()
    if not (args.encoder / "config.json").is_file():
        build_standin(args.encoder)
    if args.build_only:
        return
    out_dir = RESULTS / "foundation-teacher"
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        path = out_dir / f"seed{seed}.json"
        if not path.exists():
            row = run_seed(args.encoder, seed, args.runs, args.extra)
            path.write_text(json.dumps({**row, "machine": machine()}, indent=1) + "\n")
            print(json.dumps(row))
    rows = [json.loads(p.read_text()) for p in sorted(out_dir.glob("seed*.json"))]
    standin = json.loads((args.encoder / "standin.json").read_text())
    record = {"bench": "foundation-teacher", "title": "A distilled student against its foundation-encoder teacher "
              "(issue 30, a local stand-in)", "command": command(), "standin": standin,
              "machine": rows[0]["machine"], "rows": rows}
    (RESULTS / "foundation_teacher.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
