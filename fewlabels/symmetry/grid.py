"""The picture of a symmetry report: per transformation, examples x | g(x) and its collisions."""

from __future__ import annotations

from typing import Any

import torch

from fewlabels.evaluate.plots import new_figure, png_bytes, show_image
from fewlabels.symmetry.transforms import transformer

PAIRS = 3  # example pairs per row
COLLISION_PAIRS = 2


def symmetries_png(x_pool: torch.Tensor, report: dict[str, Any], seed: int = 0) -> bytes:
    """One row per candidate: its name and verdict, PAIRS (x, g(x)) pairs, then up to COLLISION_PAIRS collision pairs."""
    rows = report["candidates"]
    cols = 2 * (PAIRS + COLLISION_PAIRS)
    fig = new_figure(cols * 0.95, max(1, len(rows)) * 1.15)
    pick = torch.randperm(len(x_pool), generator=torch.Generator().manual_seed(seed))[:PAIRS]
    fill = 0.0
    for r, row in enumerate(rows):
        g = transformer(row["name"], fill, torch.Generator().manual_seed(seed))
        shown = [(int(i), "") for i in pick]
        for c in (row.get("collisions") or [])[:COLLISION_PAIRS]:
            if c["examples"]:
                shown.append((c["examples"][0], f"{c['from'][:8]}<->{c['to'][:8]}"))
        for k, (i, label) in enumerate(shown):
            x = x_pool[i : i + 1]
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            y = g(x)
            for j, img in enumerate((x, y)):
                ax = fig.add_subplot(len(rows), cols, r * cols + 2 * k + j + 1)
                show_image(ax, (img[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
                if j == 0 and k == 0:
                    ax.set_ylabel(f"{row['name']}\n{row['verdict']}", fontsize=7, rotation=0, ha="right", va="center")
                if label and j == 0:
                    ax.set_title(f"collision {label}", fontsize=6.5, color="#a00", loc="left")
                elif r == 0 and j == 0 and k == 0:
                    ax.set_title("x | g(x)", fontsize=7, loc="left")
    fig.subplots_adjust(wspace=0.08, hspace=0.45, left=0.2)
    return png_bytes(fig)
