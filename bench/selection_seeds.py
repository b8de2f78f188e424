"""TypiClust and core-set, fewlabels against scikit-activeml, over 10 seeds (the 3-seed table cannot separate them).

    /work/peers-venv/bin/python bench/selection_seeds.py     # needs scikit-activeml; writes bench/results/seeds/select.json

The same cells as bench/selection.py's rounds (pool per seed, 10 / 20 / 40 labels from zero,
label spreading's test accuracy), for seeds 0-9.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import selection_cells as sel  # noqa: E402
from common import RESULTS  # noqa: E402


def main() -> None:
    from fewlabels.utils.io import atomic_write_json

    out = {}
    for ds in ("fashion-mnist", "digits"):
        emb = sel.embeddings(ds, Path("/tmp/fewlabels-select-cache"), sel.SSL_RUN)
        for who, pick in (("fewlabels", sel.pick_ours), ("scikit-activeml", sel.pick_peer)):
            for strategy in ("typiclust", "coreset"):
                runs = []
                for seed in range(10):
                    idx = sel.pool_of(emb, ds, seed)
                    f, y = emb["X"][idx], emb["y"][idx]
                    k = int(emb["y"].max()) + 1
                    labeled, row = np.empty(0, dtype=np.int64), []
                    for b in sel.BUDGETS:
                        picks, _ = pick(strategy, f, labeled, b - len(labeled), y, seed, k)
                        labeled = np.concatenate([labeled, np.asarray(picks, dtype=np.int64)])
                        row.append(sel.evaluate(f, labeled, y, emb["X_test"], emb["y_test"], k)["spreading"])
                    runs.append(row)
                a = 100 * np.asarray(runs)
                out[f"{ds} {strategy} {who}"] = {"per_seed": a.tolist(), "mean": a.mean(0).tolist(), "std": a.std(0).tolist()}
                print(ds, strategy, who, " / ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(a.mean(0), a.std(0))), flush=True)
    atomic_write_json(RESULTS / "seeds" / "select.json", {"budgets": list(sel.BUDGETS), "seeds": 10, "cells": out})


if __name__ == "__main__":
    main()
