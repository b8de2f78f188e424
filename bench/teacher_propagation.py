"""Validation only: does label propagation over a trained network's features beat the network's own predictions?

    python bench/teacher_propagation.py --seeds 0,1,2 \
        --teacher 'runs/bench-pipeline/fashion-mnist-4pc-s{seed}/2-finetune'

For each seed, the split is drawn as the pipeline drew it; the labeled, unlabeled and validation images are
embedded by the teacher (EMA weights, L2-normalized features), a k-NN graph is built over them and the labels are
spread by the harmonic solution (the product's ``fewlabels.algorithms.components.graph``, as ``labelprop`` uses it). Printed:
the validation accuracy of the teacher, of the propagation, and of their average. The test set is not touched.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F


def compare(dataset: str, labels_per_class: int, val_per_class: int, seed: int, teacher_dir: str, k: int) -> dict:
    from fewlabels import data as data_mod
    from fewlabels.algorithms.components.graph import harmonic_labels, knn_graph, standardized
    from fewlabels.api import load
    from fewlabels.evaluate.probe import embed

    train = data_mod.load(dataset).train
    split = data_mod.split(train.y, labels_per_class, None, val_per_class, seed, train.classes)
    labeled, unlabeled, val = (torch.as_tensor(i, dtype=torch.int64) for i in (split.labeled, split.unlabeled,
                                                                               split.validation))
    if not len(val):
        raise SystemExit("--val-per-class must hold images out: the comparison is made on them.")
    teacher = load(teacher_dir)
    nodes = torch.cat([labeled, unlabeled, val])
    features = F.normalize(embed(teacher.model, train.x[nodes]), dim=1)
    graph = knn_graph(standardized(features, features.mean(0), features.std(0)), k)
    spread = harmonic_labels(graph, torch.arange(len(labeled)), train.y[labeled], len(train.classes))[-len(val):]
    own = torch.softmax(teacher.logits(train.x[val]), 1)
    truth = train.y[val]

    def acc(p: torch.Tensor) -> float:
        return round(100 * (p.argmax(1) == truth).float().mean().item(), 2)

    sharpened = spread.clamp(min=1e-9) ** 10  # the harmonic scores are flat; sharpened so the average is not the teacher's
    return {"seed": seed, "teacher": acc(own), "propagation": acc(spread),
            "average": acc(own + sharpened / sharpened.sum(1, keepdim=True))}


def main() -> None:
    from pipeline import add_split_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_arguments(p)
    p.add_argument("--teacher", required=True, metavar="TEMPLATE", help="the stage-2 folder per seed, with {seed} in it")
    p.add_argument("--neighbors", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    for seed in (int(s) for s in args.seeds.split(",")):
        print(compare(args.dataset, args.labels_per_class, args.val_per_class, seed, args.teacher.format(seed=seed),
                      args.neighbors), flush=True)


if __name__ == "__main__":
    main()
