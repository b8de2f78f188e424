"""The report's plots: learning curves, confusion matrix, reliability diagram, confident mistakes.

matplotlib's object API on an Agg canvas: no display is needed and the caller's pyplot backend is untouched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch

MAX_MISTAKES = 24


def new_figure(width: float = 6.0, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def metric_series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None and r.get("step") is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def line_plot(rows: list[dict], lines: Sequence[tuple[str, str, str]], title: str, ylabel: str, unit_range: bool) -> bytes | None:
    """One axis of metrics against step; ``lines`` are (column, label, style). None if no column has data."""
    drawn = [(key, label, style, *metric_series(rows, key)) for key, label, style in lines]
    drawn = [d for d in drawn if d[3]]
    if not drawn:
        return None
    fig = new_figure()
    ax = fig.add_subplot()
    for _key, label, style, xs, ys in drawn:
        ax.plot(xs, ys, style, label=label, linewidth=1.8, markersize=3.5)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if unit_range:
        ax.set_ylim(-0.02, 1.02)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9, frameon=False)
    return png_bytes(fig)


def confusion_png(cm: Sequence[Sequence[int]], classes: Sequence[str]) -> bytes:
    """Counts in each cell; colour is the share of the true class, so small classes are as readable as large ones."""
    m = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    rate = m / np.maximum(m.sum(1, keepdims=True), 1)
    side = min(9.0, max(4.2, 0.45 * k + 2.2))
    fig = new_figure(side + 0.8, side)
    ax = fig.add_subplot()
    im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8 if k > 12 else 9,
                            color="white" if rate[i, j] > 0.55 else "#222")
    labels = [c if len(c) <= 14 else c[:13] + "…" for c in classes]
    long = max(map(len, labels), default=0) > 2
    ax.set_xticks(range(k), labels, rotation=45 if long else 0, ha="right" if long else "center", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    return png_bytes(fig)


def reliability_png(bins: list[dict], ece: float | None, temperature: float | None = None, ece_raw: float | None = None) -> bytes:
    """Accuracy per confidence bin (bars) against the bin's mean confidence (red marks): their gap is miscalibration.

    ``temperature``: the bins are of the probabilities as served (logits / T); the title says so, with the network's
    own ECE (``ece_raw``) beside, so a reader knows which probabilities the diagram judges.
    """
    fig = new_figure(6.0, 4.4)
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 1.0
    full = [b for b in bins if b["count"]]
    ax.plot([0, 1], [0, 1], "--", color="#888", linewidth=1, label="perfect calibration")
    ax.bar([b["lower"] for b in full], [b["accuracy"] for b in full], width=width, align="edge", color="#4c72b0",
           edgecolor="white", label="accuracy in bin")
    ax.hlines([b["confidence"] for b in full], [b["lower"] for b in full], [b["upper"] for b in full], colors="#d62728",
              linewidth=2.5, label="mean confidence in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    shown = "-" if ece is None else f"{ece:.3f}"
    if temperature is None:
        ax.set_title(f"Reliability (ECE {shown}, {len(bins)} bins)", pad=24)
    else:
        raw = "" if ece_raw is None else f"; the network's own {ece_raw:.3f}"
        ax.set_title(f"Reliability of the served probabilities, T = {temperature:.3g} (ECE {shown}{raw}, {len(bins)} bins)",
                     pad=24, fontsize=10.5)
    # the legend goes above the axes: bars can fill any corner
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8.5, frameon=False, handlelength=1.6)
    ax.grid(alpha=0.3)
    hist.bar([b["lower"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="#999", edgecolor="white")
    top = max((b["count"] for b in bins), default=0)
    for b in full:  # one large bin dwarfs the rest: print the counts so small bins stay readable
        hist.text(b["lower"] + width / 2, b["count"] + 0.04 * top, str(b["count"]), ha="center", va="bottom", fontsize=6.5)
    hist.set_ylim(0, max(1, top) * 1.45)
    hist.set_xlabel("confidence (top class probability)")
    hist.set_ylabel("samples")
    hist.grid(alpha=0.3)
    return png_bytes(fig)


def show_image(ax, img: np.ndarray) -> None:
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def confident_mistakes(probs: torch.Tensor, y: torch.Tensor, limit: int = MAX_MISTAKES) -> list[int]:
    """Indices of wrong predictions, most confident first: where the model is sure and wrong (or the label is)."""
    conf, pred = probs.max(1)
    wrong = torch.nonzero(pred != y).flatten()
    order = torch.argsort(conf[wrong], descending=True, stable=True)
    return wrong[order][:limit].tolist()


def mistakes_png(x: torch.Tensor, probs: torch.Tensor, y: torch.Tensor, classes: Sequence[str], picks: Sequence[int]) -> bytes:
    """A grid of images, each titled with its true class, the predicted class and the confidence."""
    cols = 8
    rows = max(1, math.ceil(len(picks) / cols))
    fig = new_figure(cols * 1.25, rows * 1.55)
    for n, i in enumerate(picks):
        ax = fig.add_subplot(rows, cols, n + 1)
        show_image(ax, x[i].cpu().numpy())
        conf, pred = probs[i].max(0)
        ax.set_title(f"true {classes[int(y[i])][:10]}\npred {classes[int(pred)][:10]} {float(conf):.2f}", fontsize=7.5, color="#a00")
    fig.subplots_adjust(wspace=0.15, hspace=0.55)
    return png_bytes(fig)


# ---- the report
