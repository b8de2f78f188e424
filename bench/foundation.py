"""What a foundation encoder costs on a CPU (issue 30): images/s, embedding overhead, memory, a 10,000-photo folder,
and the distilled student's prediction speed against the teacher's.

    python bench/foundation.py [--rounds 3] [--folder-images 256]

Random weights of the real architectures (``from_config``; nothing is downloaded), written with ``save_pretrained``
and the published image processor settings to a scratch folder, so what is timed is exactly ``load_encoder(folder)``
+ ``embed_images``. Per encoder, in one process, threads 1 and 2 and the students interleaved round by round (a
shared machine's load hits each alike; the ratios are what count): the model's forward alone on its processor's
output (batch 32), ``embed_images`` end to end, and its parts (tensor -> PIL, the processor). Memory: a fresh
process per encoder (peak RSS growth). The folder: ``fewlabels embed FOLDER --encoder`` on synthetic 320x240 JPEG
photos, twice (the second a cache hit), extrapolated to 10,000 photos. One JSON per encoder under
bench/results/foundation/ (a rerun skips finished ones), collected in bench/results/foundation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import RESULTS, command, machine, notes_lines  # noqa: E402

SCRATCH = Path(os.environ.get("FEWLABELS_BENCH_SCRATCH", "/tmp/fewlabels-bench-foundation"))
IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
CLIP_NORM = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
# the published configs (hidden size, depth, heads, patch, resolution) and image processors, written out by hand
ENCODERS = {
    "ViT-S/14 (DINOv2-small)": ("Dinov2Model", dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                    patch_size=14, image_size=518, mlp_ratio=4), "BitImageProcessor",
                                dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3, **IMAGENET)),
    "ViT-B/14 (DINOv2-base)": ("Dinov2Model", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                   patch_size=14, image_size=518, mlp_ratio=4), "BitImageProcessor",
                               dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3, **IMAGENET)),
    "CLIP ViT-B/32": ("CLIPVisionModel", dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                              num_attention_heads=12, patch_size=32, image_size=224), "CLIPImageProcessor",
                      dict(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3, **CLIP_NORM)),
}
STUDENTS = ("cnn", "cnn-small")
PHOTO = (240, 320)  # (H, W) of the synthetic photos
BATCH = 32


def slug(name: str) -> str:
    return name.split(" (")[0].replace("/", "-").replace(" ", "-").lower()  # "ViT-S/14 (DINOv2-small)" -> vit-s-14


def build(name: str) -> Path:
    """The encoder's folder (random weights, seeded), written once."""
    import transformers

    folder = SCRATCH / "encoders" / slug(name)
    if (folder / "preprocessor_config.json").is_file():
        return folder
    model_cls, cfg, proc_cls, proc = ENCODERS[name]
    torch.manual_seed(0)
    config_cls = getattr(transformers, model_cls.replace("Model", "Config"))
    getattr(transformers, model_cls)(config_cls(**cfg)).save_pretrained(folder)
    getattr(transformers, proc_cls)(**proc).save_pretrained(folder)
    return folder


def photos(n: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, H, W) photo-like images: smooth colour fields with texture, so JPEG and resizing cost what photos do."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 6, 8), generator=g) * 255
    x = torch.nn.functional.interpolate(low, size=PHOTO, mode="bicubic", align_corners=False)
    x = x + torch.randn((n, 3, *PHOTO), generator=g) * 12
    return x.round().clamp(0, 255).to(torch.uint8)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def speed(name: str, rounds: int) -> dict:
    """Forward alone, embed_images end to end and its parts, and the students, at 1 and 2 threads, interleaved."""
    from fewlabels import models
    from fewlabels.evaluate.metrics import predict_logits
    from fewlabels.foundation import embed_images, load_encoder
    from fewlabels.foundation.embedding import _as_rgb_images, pixel_values

    enc = load_encoder(str(build(name)))
    x = photos(BATCH)
    pixels = enc.processor(images=_as_rgb_images(x), return_tensors="pt")["pixel_values"]
    small = (x.float() / 255).reshape(-1, *PHOTO)[:, None]
    small = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear", antialias=True).reshape(BATCH, 3, 32, 32)
    students = {s: models.get(s, (3, 32, 32), 10).eval() for s in STUDENTS}
    many = small.repeat(8, 1, 1, 1)  # 256 images: the students are timed on more than a batch, as predict serves them
    times: dict[str, list[float]] = {}
    with torch.inference_mode():  # warm-up on two images: allocator, kernels, position-embedding interpolation
        for threads in (1, 2):
            torch.set_num_threads(threads)
            enc.model(pixel_values=pixels[:2])
            embed_images(enc, x[:2], BATCH, progress=False, use_cache=False)
    for r in range(1, rounds + 1):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                t = {"forward": _timed(lambda: enc.model(pixel_values=pixels)),
                     "embed": _timed(lambda: embed_images(enc, x, BATCH, progress=False, use_cache=False)),
                     "convert": _timed(lambda: _as_rgb_images(x))}
                images = _as_rgb_images(x)
                t["processor"] = _timed(lambda images=images: enc.processor(images=images, return_tensors="pt"))
                with ThreadPoolExecutor(threads) as pool:  # both parts as embed_images runs them: in `threads` slices
                    t["prepare"] = _timed(lambda pool=pool, threads=threads: pixel_values(enc, x, pool, threads))
                for s, m in students.items():
                    t[s] = _timed(lambda m=m: predict_logits(m, many, batch_size=len(many)))
            if r:
                for k, v in t.items():
                    times.setdefault(f"{k}_{threads}t", []).append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {"encoder": name, "params_m": round(sum(p.numel() for p in enc.model.parameters()) / 1e6, 1),
           "tokens": int(enc.model(pixel_values=pixels[:1]).last_hidden_state.shape[1]), "rounds": rounds}
    for t in (1, 2):
        fwd, e2e = med[f"forward_{t}t"], med[f"embed_{t}t"]
        conv, proc, prep = med[f"convert_{t}t"], med[f"processor_{t}t"], med[f"prepare_{t}t"]
        row[f"{t}t"] = {"forward_ips": BATCH / fwd, "embed_ips": BATCH / e2e, "overhead_pct": 100 * (e2e - fwd) / fwd,
                        "convert_pct": 100 * conv / fwd, "processor_pct": 100 * proc / fwd,
                        "prepare_pct": 100 * prep / fwd, "batching_pct": 100 * (e2e - fwd - prep) / fwd,
                        **{f"{s}_ips": len(many) / med[f"{s}_{t}t"] for s in STUDENTS}}
        row[f"{t}t"]["student_ratio"] = row[f"{t}t"]["cnn_ips"] / row[f"{t}t"]["embed_ips"]
    row["seconds"] = {k: [round(v, 4) for v in vs] for k, vs in times.items()}
    return row


def folder_estimate(row: dict, measured: dict) -> dict:
    """10,000 photos for an encoder whose folder run was skipped (too slow here): the measured folder run's fixed
    and decoding costs, plus 10,000 times this encoder's own end-to-end time per image at 2 threads."""
    fixed = measured["cache_hit_s"] - measured["images"] * measured["decode_ms"] / 1000
    return {"estimated_from": measured["encoder"], "threads": 2,
            "est_10k_s": fixed + 10_000 * (measured["decode_ms"] / 1000 + 1 / row["2t"]["embed_ips"])}


def memory_probe(folder: str) -> None:
    """In a fresh process: peak RSS (MiB) after imports, after loading the encoder, and after embedding a batch."""
    from fewlabels.foundation import embed_images, load_encoder

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    import transformers

    for name in ("Dinov2Model", "CLIPVisionModel", "BitImageProcessor", "CLIPImageProcessor"):  # their imports, done
        getattr(transformers, name)
    torch.set_num_threads(2)
    status = Path("/proc/self/status").read_text().split("VmRSS:")[1]
    base = int(status.split()[0]) / 1024  # resident now, after the imports (their own peak is not the encoder's)
    enc = load_encoder(folder)
    loaded = peak()
    embed_images(enc, photos(BATCH), BATCH, progress=False, use_cache=False)
    print(json.dumps({"base_mib": base, "load_growth_mib": loaded - base, "peak_growth_mib": peak() - base}))


def memory(name: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-probe", str(build(name))], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def folder_cost(name: str, n: int) -> dict:
    """``fewlabels embed`` on an n-photo JPEG folder, twice (cache miss, then hit), extrapolated to 10,000 photos."""
    from PIL import Image

    from fewlabels import data

    root = SCRATCH / f"photos-{n}"
    if not root.is_dir():
        x = photos(n, seed=1).permute(0, 2, 3, 1).numpy()
        for i, a in enumerate(x):
            (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(a)).save(root / f"c{i % 2}" / f"{i:05d}.jpg", quality=90)
    env = {**os.environ, "FEWLABELS_CACHE": str(SCRATCH / f"cache-{slug(name)}")}
    subprocess.run(["rm", "-rf", env["FEWLABELS_CACHE"]], check=True)
    calls = []
    for _ in range(2):
        out = SCRATCH / "emb.npz"
        out.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "fewlabels", "embed", str(root), "--encoder", str(build(name)), "--out", str(out)]
        t = _timed(lambda argv=argv: subprocess.run(argv, env=env, check=True, capture_output=True))
        calls.append(t)
    decode = _timed(lambda: data.load(str(root))) / n
    miss, hit = calls
    per_image = (miss - hit) / n + decode  # the encoder's share, plus reading the photo
    fixed = hit - n * decode  # start-up, imports, loading and hashing the weights, writing the .npz
    return {"encoder": name, "images": n, "first_call_s": miss, "cache_hit_s": hit, "decode_ms": 1000 * decode,
            "est_10k_s": fixed + 10_000 * per_image, "threads": torch.get_num_threads()}


def table(record: dict) -> str:
    m = record["machine"]
    lines = [f"## {record['title']}", "",
             f"Random weights of the published architectures (`from_config`, nothing downloaded), saved with their image "
             f"processors and timed through `load_encoder` + `embed_images` (batch {BATCH}, 320x240 RGB input, "
             f"transformers {record['transformers']}, its PIL processor backend: no torchvision). {m['cpu']}, "
             f"{m['cores']} cores shared with other sessions, torch {m['torch']}, {m['date']}: absolute figures are from "
             "a loaded machine, ratios were measured in one process, interleaved (median of "
             + ", ".join(f"{r['rounds']} rounds for {r['encoder'].split(' (')[0]}" for r in record["rows"]) + ").", "",
             f"Reproduce: `{record['command']}`", "",
             "| encoder | params (M) | tokens | threads | forward (img/s) | embed end to end (img/s) | overhead % of the "
             "forward | convert / processor, 1 thread (%) | both as run (%) | batching, pooling (%) | `cnn` student (img/s) "
             "| `cnn-small` (img/s) | `cnn` / teacher |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        for t in (1, 2):
            s = r[f"{t}t"]
            lines.append(f"| {r['encoder']} | {r['params_m']} | {r['tokens']} | {t} | {s['forward_ips']:.2f} | "
                         f"{s['embed_ips']:.2f} | {s['overhead_pct']:+.1f} | {s['convert_pct']:.1f} / {s['processor_pct']:.1f} | "
                         f"{s['prepare_pct']:.1f} | {s['batching_pct']:+.1f} | {s['cnn_ips']:,.0f} | "
                         f"{s['cnn-small_ips']:,.0f} | {s['student_ratio']:,.0f}x |")
    lines += ["", "| encoder | peak RSS growth, load + a batch of 32 (MiB) | photos embedded | first call (s) | "
              "second call, cache hit (s) | 10,000 photos, estimated (min) |", "|---|---|---|---|---|---|"]
    for r in record["rows"]:
        mem, f = r["memory"], r["folder"]
        if "estimated_from" in f:
            lines.append(f"| {r['encoder']} | {mem['peak_growth_mib']:.0f} | — (its rate above, {f['estimated_from']}'s "
                         f"start-up and decoding) | — | — | {f['est_10k_s'] / 60:.0f} |")
            continue
        lines.append(f"| {r['encoder']} | {mem['peak_growth_mib']:.0f} | {f['images']} | "
                     f"{f['first_call_s']:.1f} | {f['cache_hit_s']:.1f} | {f['est_10k_s'] / 60:.0f} |")
    return "\n".join(lines + notes_lines("foundation")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder-images", type=int, default=256)
    parser.add_argument("--folder-encoders", nargs="+", choices=list(ENCODERS), default=[next(iter(ENCODERS))],
                        help="run the photo folder through these (the others are estimated from their rate)")
    parser.add_argument("--only", nargs="+", choices=list(ENCODERS), help="measure these encoders only")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.memory_probe)
    import transformers

    out_dir = RESULTS / "foundation"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.only or ENCODERS:
        path = out_dir / f"{slug(name)}.json"
        if path.exists():
            continue
        row = speed(name, args.rounds)
        torch.set_num_threads(2)
        row["memory"] = memory(name)
        if name in args.folder_encoders:
            row["folder"] = folder_cost(name, args.folder_images)
        else:
            measured = [json.loads((out_dir / f"{slug(n)}.json").read_text())["folder"] for n in args.folder_encoders]
            row["folder"] = folder_estimate(row, {"encoder": args.folder_encoders[0], **measured[0]})
        path.write_text(json.dumps({**row, "machine": machine(), "command": command()}, indent=1) + "\n")
        print(name, json.dumps({k: row[k] for k in ("1t", "2t", "memory", "folder")}))
    rows = [json.loads((out_dir / f"{slug(n)}.json").read_text()) for n in ENCODERS if (out_dir / f"{slug(n)}.json").exists()]
    record = {"bench": "foundation", "title": "What a foundation encoder costs on a CPU (issue 30)", "command": command(),
              "transformers": transformers.__version__, "machine": rows[0]["machine"] if rows else machine(), "rows": rows}
    (RESULTS / "foundation.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
