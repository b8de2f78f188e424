"""``fewlabels augment-preview``: a PNG of originals beside their weak and strong views."""

from __future__ import annotations

import argparse

from fewlabels.errors import FewLabelsError

NAME = "augment-preview"
HELP = "save a PNG of originals beside weak and strong views"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="augment-preview.png")
    p.add_argument("--n", type=int, default=8, help="number of images (rows)")
    p.add_argument("--strong-views", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hflip", action="store_true")


def run(args: argparse.Namespace) -> int:
    import io
    from pathlib import Path

    import torch
    from PIL import Image

    from fewlabels import data
    from fewlabels.augment.preview import preview_grid
    from fewlabels.utils.io import atomic_write_bytes, check_writable_dir

    if args.n < 1:
        raise FewLabelsError(f"--n must be at least 1, got {args.n}.")
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FewLabelsError(f"--out must name a .png file, got {out}{' (a folder)' if out.is_dir() else ''}.")
    check_writable_dir(out.parent)
    source = data.load(args.dataset, args.data_dir)
    if not source.train.is_image:
        raise FewLabelsError(f"{args.dataset} holds feature vectors, not images; there is nothing to preview.")
    pick = torch.randperm(len(source.train), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    hflip = source.hflip and not args.no_hflip
    grid = preview_grid(source.train.x[pick], hflip=hflip, strong_views=args.strong_views, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out}: {args.n} images; columns: original, weak, {args.strong_views} strong views")
    return 0
