"""Which samples to label and which labels to doubt: simulated labeling rounds and planted label noise.

    python bench/selection.py --parts rounds,coverage,labels      # fewlabels' strategies and check-labels
    /work/peers-venv/bin/python bench/selection.py --parts peers   # scikit-activeml and cleanlab, same inputs
    python bench/selection.py --collect && python bench/report.py

Embeddings (computed once, cached outside the repository with --cache):
- Fashion-MNIST: the backbone features of a SimCLR run (``cnn``, 10 CPU-minutes of pretraining,
  --ssl-run) on the 60k training images and the 10k test images. Each seed draws its own pool of
  ``POOL`` training images (the selection is made in it); test images are never selected on.
- digits: a PCA of the raw pixels to 64 dimensions fitted on the 1,347 training images (label-free;
  no self-supervised run), the whole training set is the pool; 450 test images.

Rounds: from zero labels, a strategy picks 10, then 10 more (20), then 20 more (40), ... (the
``BUDGETS`` cumulative totals); an oracle labels the picks with their true class. Between rounds
the model whose uncertainty margin/entropy/badge read is a linear probe (logistic regression, C=10,
on the L2-normalized embedding) of the labels so far; with zero labels those strategies (which need
a model) take their first round at random, as active learning does. "balanced" is today's
class-balanced random split (``fewlabels.data.split`` with num_labels=B, seed). After each round two
cheap downstream learners score the labels on the test set: the linear probe, and label spreading
(scikit-learn, kNN kernel, k=10) over the pool's embedding: a graph-based semi-supervised learner
on frozen self-supervised features, standing in for FixMatch (which does not fit this CPU for
every cell). Classes covered = distinct true classes among the labels.

Label checking: 25 labels per class drawn class-balanced from the pool, then symmetric noise
(exactly 20% or 40% flipped, uniformly to another class, ``fewlabels.data.noise``); fewlabels'
check_labels flags samples (cross-fitted logistic regression + leave-one-out neighbours, plus 4 weakly
augmented views through the SimCLR encoder on Fashion-MNIST); cleanlab's ``find_label_issues`` gets the
same mean probabilities, and also the cross-fitted ones alone. Precision, recall, F1 against the flips.

One JSON per (part, dataset, name, seed) under bench/results/select/ (a rerun skips finished cells);
--collect writes bench/results/select.json for bench/report.py. The cells are in selection_cells.py, the
table in selection_table.py; this file runs the cells and collects them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402
from selection_cells import (  # noqa: E402
    LABELS_PER_CLASS,
    NOISE,
    PEER_STRATEGIES,
    POOL,
    SSL_RUN,
    STRATEGIES,
    coverage_cell,
    embeddings,
    fixmatch_cell,
    labels_cell,
    rounds_cell,
)

CELLS = RESULTS / "select"


def run_cells(args) -> None:
    CELLS.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    peer = "peers" in args.parts
    for dataset in args.datasets.split(","):
        emb = embeddings(dataset, cache, args.ssl_run)
        jobs = []
        if "rounds" in args.parts:
            jobs += [("rounds", s, seed) for seed in args.seeds for s in (args.strategies or STRATEGIES)]
        if "coverage" in args.parts:
            jobs += [("coverage", s, seed) for seed in range(10) for s in ("auto", "random", "balanced")]
        if "labels" in args.parts or peer:
            jobs += [("labels", f"noise{n}", seed) for seed in args.seeds for n in NOISE]
        if peer:
            jobs += [("peers", s, seed) for seed in args.seeds for s in PEER_STRATEGIES]
        if "fixmatch" in args.parts:
            jobs += [("fixmatch", s, seed) for seed in args.seeds for s in ("auto", "random")]
        for part, name, seed in jobs:
            tag = "labels-peers" if part == "labels" and peer else part
            file = CELLS / f"{tag}-{dataset}-{name}-s{seed}.json"
            if file.exists():
                continue
            t0 = time.perf_counter()
            if part == "rounds":
                record = rounds_cell(dataset, name, seed, emb)
            elif part == "peers":
                record = rounds_cell(dataset, name, seed, emb, peer=True)
            elif part == "fixmatch":
                record = fixmatch_cell(dataset, name, seed, emb)
            elif part == "coverage":
                record = coverage_cell(dataset, name, seed, emb)
            else:
                record = labels_cell(dataset, float(name[5:]), seed, emb, args.ssl_run, peer)
            record.update({"part": tag, "dataset": dataset, "name": name, "seed": seed,
                           "embedding": str(emb["embedding"]), "wall_s": time.perf_counter() - t0})
            tmp = file.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1))
            tmp.replace(file)


def collect() -> None:
    cells = [json.loads(p.read_text()) for p in sorted(CELLS.glob("*.json"))]
    from fewlabels.select.strategies import SWITCH_PER_CLASS

    record = {"bench": "select", "title": "Which samples to label, and which labels to doubt", "machine": machine(),
              "pool": POOL, "switch_per_class": SWITCH_PER_CLASS, "labels_per_class": LABELS_PER_CLASS,
              "command": "python bench/selection.py --parts rounds,coverage,labels; "
                         "/work/peers-venv/bin/python bench/selection.py --parts peers; python bench/selection.py --collect",
              "cells": cells}
    out = RESULTS / "select.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"{len(cells)} cells -> {out}")



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="rounds,coverage,labels", help="rounds, coverage, labels, peers")
    ap.add_argument("--datasets", default="digits,fashion-mnist", help="also fashion-mnist-pca: the cold-start PCA")
    ap.add_argument("--strategies", type=lambda s: s.split(","), help="rounds: these strategies only (default all)")
    ap.add_argument("--seeds", default="0,1,2", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--cache", default="/tmp/fewlabels-select-cache", help="where the embeddings are cached")
    ap.add_argument("--ssl-run", default=SSL_RUN)
    ap.add_argument("--collect", action="store_true", help="gather the cells into bench/results/select.json")
    args = ap.parse_args()
    if args.collect:
        collect()
    else:
        run_cells(args)


if __name__ == "__main__":
    main()
