"""Symmetry discovery: the verdicts per dataset and their time, a control suite of data with a known answer
(8 controls x 4 label counts x 10 seeds), and FixMatch with --augment auto against the hand-set views and
against every flip and rotation.

    python bench/symmetries.py                       # everything not yet in bench/results/symmetries/
    python bench/symmetries.py --part controls       # or: verdicts, train; --controls digits,textures --seeds 0,1
    python bench/report.py

One JSON per verdict table, per control run and per training run under bench/results/symmetries/
(a rerun skips what is there), gathered in bench/results/symmetries.json. The controls analyse the
training split only (the test split is never read). Training: FixMatch, 4 labels per class, the final
EMA model's test accuracy; nothing is chosen on the test set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402
from symmetries_table import POLICIES, table  # noqa: E402,F401  (report.py imports table from here)

RUNS = RESULTS / "symmetries"
DATASETS = ("digits", "fashion-mnist", "rotated-digits", "mirror-pairs")
TRAIN_DATASETS = ("digits", "rotated-digits", "fashion-mnist")
SEEDS = (0, 1, 2)
# sized so the whole grid fits about 50 CPU-minutes on one thread of this 2-core machine
TRAIN = {"digits": dict(iterations=300, batch_size=32, uratio=4, eval_every=300),
         "rotated-digits": dict(iterations=300, batch_size=32, uratio=4, eval_every=300),
         "fashion-mnist": dict(iterations=150, batch_size=32, uratio=3, eval_every=150)}
CLAIMS = {  # (dataset, labels per class): what tests/test_symmetries.py asserts
    ("digits", 20): "hflip and rot180 change the label; rot180 maps 6 and 9 onto each other",
    ("fashion-mnist", 20): "hflip kept; rot90 changes the label",
    ("rotated-digits", 20): "rot90 already symmetric (kept)",
    ("mirror-pairs", 20): "hflip changes the label, mapping the two classes onto each other",
    ("digits", 4): "hflip and rot180 change the label; rot180 maps 6 and 9 onto each other",
    ("fashion-mnist", 4): "hflip kept; rot90 changes the label",
    ("rotated-digits", 4): "rot90 already symmetric (kept)",
    ("mirror-pairs", 4): "hflip changes the label, mapping the two classes onto each other",
}


def source(name: str, seed: int = 0):
    from fewlabels import data
    from fewlabels.symmetry.controls import mirror_pairs, rotated_digits

    if name == "rotated-digits":
        return rotated_digits(0)  # one fixed turned copy: the runs' seeds vary the split
    if name == "mirror-pairs":
        return mirror_pairs(0)
    return data.load(name)


def analyse_on(name: str, seed: int, labels_per_class: int, names=None) -> dict:
    from fewlabels import data
    from fewlabels.symmetry import analyse

    src = source(name)
    sp = data.split(src.train.y, labels_per_class, None, 0, seed)
    x = src.train.x
    return analyse(x[sp.unlabeled], x[sp.labeled], src.train.y[sp.labeled], src.train.classes, names, seed=seed)


def verdicts(name: str) -> dict:
    from fewlabels.symmetry import choose

    report = analyse_on(name, 0, 4)
    return {"dataset": name, "labels_per_class": 4, "seed": 0, "seconds": report["seconds"], "notes": report["notes"],
            "rows": [{k: c[k] for k in ("name", "distinguishability", "agreement", "verdict", "reason")}
                     | {"delta_loglik": (c["invariance"] or {}).get("delta_loglik"),
                        "collisions": [f"{d['from']}<->{d['to']}" for d in c["collisions"] or []]}
                     for c in report["candidates"]],
            "auto_choice": choose(report)}


def claim_holds(name: str, rows: dict) -> bool:
    from fewlabels.symmetry import CHANGES, KEEPS, SYMMETRIC

    def pair(row, a, b):
        return any({c["from"], c["to"]} == {a, b} for c in row["collisions"] or [])

    if name == "digits":
        return rows["hflip"]["verdict"] == CHANGES and rows["rot180"]["verdict"] == CHANGES and pair(rows["rot180"], "6", "9")
    if name == "fashion-mnist":
        return rows["hflip"]["verdict"] in (KEEPS, SYMMETRIC) and rows["rot90"]["verdict"] == CHANGES
    if name == "rotated-digits":
        return rows["rot90"]["verdict"] == SYMMETRIC
    return rows["hflip"]["verdict"] == CHANGES and pair(rows["hflip"], "as drawn", "mirrored")


def seeds_check(name: str, labels_per_class: int) -> dict:
    from fewlabels.symmetry.controls import rotated_digits

    names = {"digits": ["hflip", "rot180"], "fashion-mnist": ["hflip", "rot90"], "rotated-digits": ["rot90"],
             "mirror-pairs": ["hflip"]}[name]
    held, times = [], []
    for seed in range(10):
        if name == "rotated-digits":  # a fresh random turn per seed, as the test builds it
            from fewlabels import data
            from fewlabels.symmetry import analyse

            src = rotated_digits(seed)
            sp = data.split(src.train.y, labels_per_class, None, 0, seed)
            report = analyse(src.train.x[sp.unlabeled], src.train.x[sp.labeled], src.train.y[sp.labeled],
                             src.train.classes, names, seed=seed)
        else:
            report = analyse_on(name, seed, labels_per_class, names)
        held.append(claim_holds(name, {c["name"]: c for c in report["candidates"]}))
        times.append(report["seconds"])
    return {"dataset": name, "labels_per_class": labels_per_class, "claim": CLAIMS[(name, labels_per_class)],
            "held": sum(held), "of": len(held), "per_seed": held, "mean_seconds": round(sum(times) / len(times), 2)}


# the controls: what each claims, as {transformation: verdicts that are right}; "uncertain" is never wrong
# but is counted apart. Thresholds were set on digits and the textures only; the others check them.
LABEL_COUNTS = (2, 4, 10, 20)
CONTROL_SEEDS = tuple(range(10))
LABEL_KEPT = ("keeps the label", "already symmetric")
LABEL_CHANGED = ("changes the label",)
CONTROLS = {
    "fmnist-transposed": ("Fashion-MNIST, each image transposed with probability 1/2", {"transpose": LABEL_KEPT}),
    "fmnist-quarter-turned": ("Fashion-MNIST, each image turned by a random multiple of 90 degrees",
                              {"rot90": LABEL_KEPT, "rot180": LABEL_KEPT}),
    "fmnist-flipped": ("Fashion-MNIST, each image flipped upside down with probability 1/2", {"vflip": LABEL_KEPT}),
    "mirror-pairs": ("two classes, chiral digits as drawn and mirrored", {"hflip": LABEL_CHANGED}),
    "turned-digits": ("digits without 6 and 9, each turned by a random multiple of 90 degrees",
                      {"rot90": LABEL_KEPT, "rot180": LABEL_KEPT}),
    "digits": ("scikit-learn digits", {"hflip": LABEL_CHANGED, "rot180": LABEL_CHANGED}),
    "fashion-mnist": ("Fashion-MNIST", {"hflip": LABEL_KEPT, "rot90": LABEL_CHANGED}),
    "textures": ("five classes of isotropic random textures (made here)",
                 {n: LABEL_KEPT for n in ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose")}),
}
_BASE: dict = {}


def control_source(name: str, seed: int):
    """The control's data for one seed (the random orientations, turns and textures are drawn afresh per seed)."""
    from fewlabels import data
    from fewlabels.symmetry.controls import mirror_pairs, random_orientation, rotated_digits, textures

    if name.startswith("fmnist-"):
        if "fashion-mnist" not in _BASE:
            _BASE["fashion-mnist"] = data.load("fashion-mnist")
        return random_orientation(_BASE["fashion-mnist"], name[len("fmnist-"):], seed)
    if name in ("digits", "fashion-mnist"):
        if name not in _BASE:
            _BASE[name] = data.load(name)
        return _BASE[name]
    return {"mirror-pairs": mirror_pairs, "turned-digits": rotated_digits, "textures": textures}[name](seed)


def control_run(name: str, labels_per_class: int, seed: int) -> dict:
    """One control, one label count, one seed: the claimed transformations' verdicts and whether they are right."""
    from fewlabels import data
    from fewlabels.symmetry import analyse
    from fewlabels.symmetry.analysis import UNCERTAIN

    _, claims = CONTROLS[name]
    src = control_source(name, seed)
    sp = data.split(src.train.y, labels_per_class, None, 0, seed)
    x, y = src.train.x, src.train.y
    report = analyse(x[sp.unlabeled], x[sp.labeled], y[sp.labeled], src.train.classes, list(claims), seed=seed)
    rows = {c["name"]: c for c in report["candidates"]}
    outcome = {n: "right" if rows[n]["verdict"] in ok else "uncertain" if rows[n]["verdict"] == UNCERTAIN else "wrong"
               for n, ok in claims.items()}
    overall = "wrong" if "wrong" in outcome.values() else "uncertain" if "uncertain" in outcome.values() else "right"
    return {"control": name, "labels_per_class": labels_per_class, "seed": seed, "outcome": overall,
            "per_transformation": outcome, "seconds": report["seconds"],
            "rows": [{k: c.get(k) for k in ("name", "distinguishability", "distinguishability_sd", "agreement",
                                            "agreement_sd", "collision_share", "verdict", "reason", "votes")}
                     | {"accuracy_drop": (c["invariance"] or {}).get("accuracy_drop"),
                        "prob_true": [(c["invariance"] or {}).get(k) for k in ("prob_true", "prob_true_moved", "chance")],
                        "delta_loglik": (c["invariance"] or {}).get("delta_loglik"),
                        "collisions": [f"{d['from']}<->{d['to']}" for d in c["collisions"] or []]}
                     for c in report["candidates"]]}


def controls_summary(runs: list[dict]) -> list[dict]:
    """Per control and label count: how many seeds were right, uncertain, wrong."""
    out = []
    for name in CONTROLS:
        for lpc in LABEL_COUNTS:
            rows = [r for r in runs if r["control"] == name and r["labels_per_class"] == lpc]
            if rows:
                n = {k: sum(r["outcome"] == k for r in rows) for k in ("right", "uncertain", "wrong")}
                out.append({"control": name, "labels_per_class": lpc, "seeds": len(rows), **n,
                            "mean_seconds": round(sum(r["seconds"] for r in rows) / len(rows), 2)})
    return out


def train_run(name: str, policy: str, seed: int, npz_dir: Path) -> dict:
    from fewlabels.train import TrainConfig, train

    dataset = name
    if name == "rotated-digits":
        from fewlabels.symmetry.controls import save_npz

        path = npz_dir / "rotated-digits.npz"
        if not path.exists():
            save_npz(source(name), str(path))
        dataset = str(path)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(dataset=dataset, algorithm="fixmatch", labels_per_class=4, seed=seed, augment=policy,
                          out=str(Path(tmp) / "run"), checkpoint_every=10**6, **TRAIN[name])
        start = time.perf_counter()
        res = train(cfg, progress=False)
        total = time.perf_counter() - start
    choice = cfg.augment_choice or {}
    return {"dataset": name, "policy": policy, "seed": seed, "test_accuracy": res["test_accuracy"],
            "iterations": res["iterations"], "wall_time_s": round(total, 1), "train_wall_time_s": res["wall_time_s"],
            "symmetries": choice.get("symmetries"), "analysis_seconds": choice.get("analysis_seconds"),
            **{k: TRAIN[name][k] for k in ("batch_size", "uratio")}}


def collect() -> None:
    from fewlabels.utils.io import atomic_write_json

    def load(pattern):
        return [json.loads(p.read_text()) for p in sorted(RUNS.glob(pattern))]

    atomic_write_json(RESULTS / "symmetries.json", {
        "bench": "symmetries", "title": "Symmetry discovery and --augment auto", "machine": machine(),
        "verdicts": load("verdicts-*.json"), "seeds": load("seeds-*.json"), "train": load("train-*.json"),
        "controls": controls_summary(load("controls/*.json")), "control_claims": {
            n: {"data": d, "claims": {t: list(ok) for t, ok in c.items()}} for n, (d, c) in CONTROLS.items()},
        "train_settings": TRAIN,
        "command": "OMP_NUM_THREADS=1 python bench/symmetries.py && python bench/report.py"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("all", "verdicts", "controls", "seeds", "train"), default="all")
    p.add_argument("--controls", default=",".join(CONTROLS), help="comma-separated controls (default: all)")
    p.add_argument("--labels", default=",".join(map(str, LABEL_COUNTS)), help="labels per class (default 2,4,10,20)")
    p.add_argument("--seeds", default=",".join(map(str, CONTROL_SEEDS)), help="seeds (default 0..9)")
    args = p.parse_args()
    import torch

    from fewlabels.utils.io import atomic_write_json

    torch.set_num_threads(1)
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "verdicts"):
        for name in DATASETS:
            path = RUNS / f"verdicts-{name}.json"
            if not path.exists():
                atomic_write_json(path, verdicts(name))
                collect()
    if args.part in ("all", "controls"):
        (RUNS / "controls").mkdir(exist_ok=True)
        for lpc in map(int, args.labels.split(",")):
            for name in args.controls.split(","):
                for seed in map(int, args.seeds.split(",")):
                    path = RUNS / "controls" / f"{name}-{lpc}pc-s{seed}.json"
                    if not path.exists():
                        run = control_run(name, lpc, seed)
                        atomic_write_json(path, run)
                        print(f"{name} {lpc}/class seed {seed}: {run['outcome']} {run['per_transformation']} "
                              f"{run['seconds']:.1f} s", flush=True)
            collect()
    if args.part in ("all", "train"):
        with tempfile.TemporaryDirectory() as npz_dir:
            for name in TRAIN_DATASETS:
                for seed in SEEDS:
                    for policy in POLICIES:
                        path = RUNS / f"train-{name}-{policy}-s{seed}.json"
                        if not path.exists():
                            atomic_write_json(path, train_run(name, policy, seed, Path(npz_dir)))
                            collect()
    if args.part == "seeds":  # the format-1 claims check, superseded by the controls
        for name, lpc in CLAIMS:
            path = RUNS / f"seeds-{name}-{lpc}pc.json"
            if not path.exists():
                atomic_write_json(path, seeds_check(name, lpc))
                collect()
    collect()


if __name__ == "__main__":
    main()
