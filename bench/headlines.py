"""Every few-label headline as served, read against the ceiling (issue 29, item 6).

    python bench/report.py          # rewrites bench/results/headlines.json from the other benches' records, then BENCHMARKS.md

Trains nothing: it gathers the headline runs the other benches recorded (the pipeline and its from-scratch
baselines in bench/results/pipeline.json, the consistency family in bench/results/consistency.json), with what
each run's results.json says about its predictions as served (flip TTA where the views flip, the temperature and
where it was fitted, test ECE before -> after), and each row's distance to the ceiling: supervised training of
the same network on every Fashion-MNIST label at the ceiling's largest budget (bench/results/ceiling.json).
Rows recorded before a run kept those figures show "—" there.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONSISTENCY_SETTINGS, RESULTS, mean_cell, notes_lines, pct_mean_std  # noqa: E402

RECORD = RESULTS / "headlines.json"
CEILING_ROW = ("cnn", "fp32", "sgd")  # the network every headline trains, with today's recipe


def ceiling_reference(ceiling: dict | None) -> dict | None:
    """The default network's ceiling at the largest budget it ran with one thread: mean test accuracy and seeds."""
    if not ceiling:
        return None
    rows = [r for r in ceiling["rows"] if (r["model"], r["precision"], r.get("optimizer", "sgd")) == CEILING_ROW
            and r["torch_threads"] == 1]
    if not rows:
        return None
    budget = max(r["budget_s"] for r in rows)
    at = [r["test_accuracy"] for r in rows if r["budget_s"] == budget]
    return {"model": CEILING_ROW[0], "precision": CEILING_ROW[1], "budget_s": budget, "seeds": len(at),
            "test_accuracy": statistics.fmean(at)}


def pipeline_headlines(record: dict) -> list[dict]:
    """The default pipeline (its final stage, at each budget it ran) and the from-scratch baselines, one row per seed."""
    out = []
    for r in record["rows"]:
        if r.get("variant"):
            continue
        if r.get("baseline"):
            stage = r["stages"][0]
            path = f"{stage['algorithm']} from scratch"
            budget = f"{stage['iterations']} it"
        elif r["stages"][0]["algorithm"] == "simclr":
            stage = r["stages"][-1]
            path = "pipeline (" + " → ".join(s["algorithm"] for s in r["stages"]) + ")"
            budget = f"{sum(s['iterations'] for s in r['stages'])} it"
        else:
            continue
        out.append({"dataset": r["dataset"], "labels_per_class": r["labels_per_class"], "path": path, "budget": budget,
                    "seed": r["seed"], "cpu_s": r["total_wall_time_s"], **stage})
    return out


def consistency_headlines(record: dict) -> list[dict]:
    """The consistency family's network methods, one row per seed."""
    iterations = record["budget"]["iterations"]
    out = []
    for r in record["rows"]:
        if r.get("iterations") is None:  # scikit-learn's estimators: no network to serve
            continue
        dataset, lpc, _ = CONSISTENCY_SETTINGS[r["setting"]]
        per_class = r.get("per_class_accuracy") or {}
        worst = min(per_class, key=per_class.get) if per_class else None
        out.append({**r, "dataset": dataset, "labels_per_class": lpc, "path": r["method"], "budget": f"{iterations} it",
                    "cpu_s": r.get("cpu_time_s", r["wall_time_s"]), "worst_class": worst,
                    "worst_class_accuracy": per_class.get(worst)})
    return out


def read(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def collect() -> dict:
    rows = []
    pipeline, consistency = read("pipeline"), read("consistency")
    if pipeline:
        rows += pipeline_headlines(pipeline)
    if consistency:
        rows += consistency_headlines(consistency)
    return {"bench": "headlines", "title": "Every headline as served, against the ceiling",
            "command": "python bench/report.py", "ceiling": ceiling_reference(read("ceiling")), "rows": rows}


def table(record: dict) -> str:
    ref = record.get("ceiling")
    ref_text = (f"`{ref['model']}` {ref['precision']} with every label, {ref['budget_s']:.0f} CPU-s, "
                f"{100 * ref['test_accuracy']:.2f}% over {ref['seeds']} seeds" if ref else "not measured")
    lines = [f"## {record['title']}", "",
             "The headline runs of the pipeline, from-scratch and consistency benches, with the figures of their "
             "predictions as `predict` serves them: flip test-time augmentation where the run's views flip, and the "
             "temperature (fitted on the validation split where the run held one out, else on the unlabeled pool's weak "
             "views: *pool*). "
             f"*To the ceiling*: mean test accuracy minus the ceiling, {ref_text} (Fashion-MNIST only). Rows without "
             "served figures ran before runs recorded them. CPU-min: one thread per run.", "",
             f"Reproduce: `{record['command']}` (rewritten from the records of the benches named above)", "",
             "| dataset | labels/class | path | budget | seeds | validation % | test % | flip TTA % | T (fitted on) "
             "| ECE before → after | worst class % | CPU-min | to the ceiling |", "|---" * 13 + "|"]
    groups: dict[tuple, list[dict]] = {}
    for r in record["rows"]:
        groups.setdefault((r["dataset"], r["labels_per_class"], r["path"], r["budget"]), []).append(r)

    def pct(rs: list[dict], key: str) -> str:
        """mean ± std over the seeds that have it, saying how many where not all do."""
        n = sum(isinstance(r.get(key), (int, float)) for r in rs)
        return pct_mean_std(rs, key) + (f" ({n} of {len(rs)})" if 0 < n < len(rs) else "")

    for (dataset, lpc, path, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                   -statistics.fmean(r["test_accuracy"] for r in kv[1]))):
        fitted = sorted({r["temperature_fitted_on"].split(":")[0].removeprefix("unlabeled ") for r in rs
                         if r.get("temperature_fitted_on")})
        t = mean_cell(rs, "temperature", ".2f") + (f" ({', '.join(fitted)})" if fitted else "")
        n_ece = sum(isinstance(r.get("ece_before"), (int, float)) for r in rs)
        ece = "—" if not n_ece else (f"{mean_cell(rs, 'ece_before', '.3f')} → {mean_cell(rs, 'ece_after', '.3f')}"
                                     + (f" ({n_ece} of {len(rs)})" if n_ece < len(rs) else ""))
        gap = "—"
        if ref and dataset == "fashion-mnist":
            gap = f"{100 * (statistics.fmean(r['test_accuracy'] for r in rs) - ref['test_accuracy']):+.2f}"
        lines.append(f"| {dataset} | {lpc} | {path} | {budget} | {len(rs)} | {pct(rs, 'val_accuracy')} | "
                     f"{pct(rs, 'test_accuracy')} | {pct(rs, 'test_accuracy_tta')} | {t} | {ece} | "
                     f"{mean_cell(rs, 'worst_class_accuracy', '.1f', 100)} "
                     f"| {mean_cell(rs, 'cpu_s', '.1f', 1 / 60)} | {gap} |")
    return "\n".join(lines + notes_lines("headlines")) + "\n"


def refresh() -> None:
    """Rewrite headlines.json from the records it reads (report.py calls this before every BENCHMARKS.md)."""
    from fewlabels.utils.io import atomic_write_json

    atomic_write_json(RECORD, collect())
