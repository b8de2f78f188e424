"""``fewlabels augment-preview``: a PNG of originals beside their weak and strong views."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite, count
from fewlabels.errors import FewLabelsError

NAME = "augment-preview"
HELP = "save a PNG of originals beside weak and strong views"
MAX_ROWS, MAX_STRONG_VIEWS = 256, 16  # a grid past these is too large to look at (and slow to draw)


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="augment-preview.png")
    p.add_argument("--n", type=int, default=8, help=f"number of images (rows), 1 to {MAX_ROWS}")
    p.add_argument("--strong-views", type=int, default=3, help=f"strong views per image (columns), 0 to {MAX_STRONG_VIEWS}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hflip", action="store_true")
    add_overwrite(p, "--out")


def run(args: argparse.Namespace) -> int:
    import io
    from pathlib import Path

    import torch
    from PIL import Image

    from fewlabels import data
    from fewlabels.augment.preview import preview_grid
    from fewlabels.utils.io import check_replaceable, check_writable_dir, write_output

    count(args.n, "--n", (1, MAX_ROWS))
    count(args.strong_views, "--strong-views", (0, MAX_STRONG_VIEWS))
    count(args.seed, "--seed", "seed")
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FewLabelsError(f"--out must name a .png file, got {out}{' (a folder)' if out.is_dir() else ''}.")
    check_writable_dir(out.parent)
    check_replaceable(out, args.overwrite)
    source = data.load(args.dataset, args.data_dir)
    if not source.train.is_image:
        raise FewLabelsError(f"{args.dataset} holds feature vectors, not images; there is nothing to preview.")
    pick = torch.randperm(len(source.train), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    hflip = source.hflip and not args.no_hflip
    grid = preview_grid(source.train.x[pick], hflip=hflip, strong_views=args.strong_views, seed=args.seed)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    write_output(out, buf.getvalue(), "png")
    print(f"wrote {out}: {args.n} images; columns: original, weak, {args.strong_views} strong views")
    return 0
