"""Label augmentation, adaptive augmentation, noisy labels and class imbalance, each against its baseline.

One experiment per setting, each with the baseline the method is built on, on the same
labeled splits (one per seed) and the same budget. The final EMA model's test accuracy
is reported; the test set is never used to choose anything. Runs go to the same pool of
single-threaded workers as bench/consistency.py, and the JSON is saved after every run,
so an interrupted benchmark resumes where it stopped. Regenerates BENCHMARKS.md.

    python bench/methods.py                                  # the published table
    python bench/methods.py --experiments noisy40 --seeds 0 --scale 0.05 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, machine  # noqa: E402
from consistency import run_tasks  # noqa: E402

FMNIST = {"dataset": "fashion-mnist"}
SSL_BUDGET = {"iterations": 800, "batch_size": 32, "uratio": 3}  # bench/consistency.py's common budget
SUPERVISED_BUDGET = {"iterations": 2000, "batch_size": 64, "uratio": 1}

# name: heading, training settings, budget, baseline first, then the methods built on it
EXPERIMENTS = {
    "full": ("SLA vs cross-entropy, fully supervised (all 60,000 labels)",
             {**FMNIST, "labels_per_class": None}, SUPERVISED_BUDGET, ["supervised", "sla"]),
    "full3x": ("SLA vs cross-entropy, fully supervised, 3x the budget (6,000 iterations)",
               {**FMNIST, "labels_per_class": None}, {**SUPERVISED_BUDGET, "iterations": 6000}, ["supervised", "sla"]),
    "lpc25": ("SLA vs cross-entropy, 25 labels per class (labeled data only)",
              {**FMNIST, "labels_per_class": 25}, SSL_BUDGET, ["supervised", "sla"]),
    "lpc4": ("SLA + FixMatch and SAA vs FixMatch, 4 labels per class",
             {**FMNIST, "labels_per_class": 4}, SSL_BUDGET, ["fixmatch", "sla-fixmatch", "saa"]),
    "lpc4long": ("SLA + FixMatch and SAA vs FixMatch, 4 labels per class, 3,000 iterations",
                 {**FMNIST, "labels_per_class": 4}, {**SSL_BUDGET, "iterations": 3000}, ["fixmatch", "sla-fixmatch", "saa"]),
    "noisy40": ("ELR and co-teaching vs cross-entropy, 40% symmetric label noise (300 labels per class)",
                {**FMNIST, "labels_per_class": 300, "label_noise": 0.4}, SUPERVISED_BUDGET,
                ["supervised", "elr", "coteaching"]),
    "noisy40long": ("ELR and co-teaching vs cross-entropy at 40% symmetric noise, 3x the budget (chosen on a validation split, see notes)",
                    {**FMNIST, "labels_per_class": 300, "label_noise": 0.4}, {**SUPERVISED_BUDGET, "iterations": 6000},
                    ["supervised", "elr", "coteaching", "elr:lambda_elr=1"]),
    "lt100": ("DASO and logit adjustment vs FixMatch, long-tailed (imbalance ratio 100, 200 labels at the head)",
              {**FMNIST, "labels_per_class": 200, "imbalance_ratio": 100.0}, SSL_BUDGET,
              ["fixmatch", "fixmatch-la", "daso"]),
    "lt100long": ("DASO vs FixMatch, long-tailed (ratio 100), 3,000 iterations",
                  {**FMNIST, "labels_per_class": 200, "imbalance_ratio": 100.0}, {**SSL_BUDGET, "iterations": 3000},
                  ["fixmatch", "daso"]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every iteration budget (smoke runs)")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each")
    ap.add_argument("--runs", default="runs/bench-methods")
    ap.add_argument("--out", default=str(RESULTS / "methods.json"))
    args = ap.parse_args()

    out = Path(args.out)
    budgets = {name: {**exp[2], "iterations": max(1, round(exp[2]["iterations"] * args.scale)), "model": args.model}
               for name, exp in EXPERIMENTS.items()}
    record = json.loads(out.read_text()) if out.exists() else {"rows": []}
    old = record.get("budgets", {})  # keep the runs whose experiment kept its budget
    record["rows"] = [r for r in record["rows"] if old.get(r["setting"]) == budgets.get(r["setting"])]
    record.update({
        "bench": "methods",
        "title": "Label augmentation, adaptive augmentation, noisy labels, class imbalance",
        "command": command(),
        "budgets": budgets,
        "experiments": {name: {"heading": exp[0], "config": exp[1], "baseline": exp[3][0]} for name, exp in EXPERIMENTS.items()},
        "machine": {**machine(), "torch_threads": 1, "jobs": args.jobs},
    })
    tasks = [{"setting": name, "seed": seed, "method": method, "runs": args.runs, "config": EXPERIMENTS[name][1],
              **budgets[name]}
             for seed in args.seeds for name in args.experiments for method in EXPERIMENTS[name][3]]
    run_tasks(tasks, record, out, args.jobs)


if __name__ == "__main__":
    main()
