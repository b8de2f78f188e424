"""What a trained model is worth: the evaluation record, its text table, and the HTML report with plots.

Everything here works on plain data (logits, labels, rows of metrics.csv, results.json), so it
is testable without training and never needs the training loop. Plots use matplotlib's
object API on an Agg canvas: no display is needed and the caller's pyplot backend is untouched.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

import torch

from fewlabels.evaluate.calibration import DEFAULT_BINS, expected_calibration_error, reliability_bins
from fewlabels.evaluate.metrics import confusion_matrix, macro_f1, per_class_accuracy, per_class_f1
from fewlabels.evaluate.plots import confident_mistakes, confusion_png, line_plot, metric_series, mistakes_png, reliability_png


def _finite(v: float) -> float | None:
    """NaN (a class with no samples) becomes null: JSON has no NaN."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def evaluation_record(logits: torch.Tensor, y: torch.Tensor, classes: Sequence[str], bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE, per-class scores, confusion matrix and reliability bins, JSON-ready."""
    classes = list(classes)
    k = len(classes)
    y = y.long()
    probs = torch.softmax(logits.double(), dim=1)
    pred = probs.argmax(1)
    acc_c = per_class_accuracy(y, pred, k)
    f1_c = per_class_f1(y, pred, k)
    support = torch.bincount(y, minlength=k).tolist()
    return {
        "n": len(y),
        "accuracy": int((pred == y).sum()) / len(y) if len(y) else None,
        "macro_f1": _finite(macro_f1(y, pred, k)),
        "ece": _finite(expected_calibration_error(probs, y, bins)),
        "ece_bins": bins,
        "mean_confidence": _finite(float(probs.max(1).values.mean())) if len(y) else None,
        "classes": classes,
        "per_class": {c: {"support": support[i], "accuracy": _finite(acc_c[i]), "f1": _finite(f1_c[i])} for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y, pred, k).tolist(),
        "reliability": reliability_bins(probs, y, bins),
    }


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_evaluation(record: dict[str, Any]) -> str:
    """The record as a plain-text table: summary line, per-class scores, confusion matrix."""
    classes = record["classes"]
    lines = [f"accuracy {_num(record['accuracy'])}   macro-F1 {_num(record['macro_f1'])}   "
             f"ECE ({record['ece_bins']} bins) {_num(record['ece'])}   samples {record['n']}", ""]
    w = max(5, *(len(c) for c in classes))
    lines.append(f"{'class':<{w}}  {'support':>7}  {'accuracy':>8}  {'F1':>6}")
    for c in classes:
        row = record["per_class"][c]
        lines.append(f"{c:<{w}}  {row['support']:>7}  {_num(row['accuracy']):>8}  {_num(row['f1']):>6}")
    cm = record["confusion_matrix"]
    cell = max(4, len(str(max((max(r) for r in cm), default=0))) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class index)",
              f"{'':<{w}}  " + "".join(f"{i:>{cell}}" for i in range(len(classes)))]
    for i, c in enumerate(classes):
        lines.append(f"{c:<{w}}  " + "".join(f"{v:>{cell}}" for v in cm[i]))
    return "\n".join(lines)


# ---- the run folder


def metric_floats(rows: list[dict[str, str]]) -> list[dict[str, float | None]]:
    """metrics.csv's rows (as ``RunFolder.metrics`` reads them) as floats, None where a cell is empty or not a number."""
    out = []
    for raw in rows:
        row: dict[str, float | None] = {}
        for key, value in raw.items():
            if key is None:  # a row longer than the header
                continue
            try:
                row[key] = float(value) if value not in ("", None) else None
            except (TypeError, ValueError):
                row[key] = None
        out.append(row)
    return out


def _cell(v: Any) -> str:
    return html.escape("-" if v is None or v == "" else str(v))


def _header(results: dict, config: dict, evaluation: dict | None) -> list[tuple[str, str]]:
    labels = results.get("num_labeled")
    lpc = results.get("labels_per_class", config.get("labels_per_class"))
    if labels is None:
        labels = f"{lpc} per class" if lpc is not None else config.get("num_labels")
    elif lpc is not None:
        labels = f"{labels} ({lpc} per class)"
    options = results.get("algorithm_options") or config.get("options") or {}
    algo = results.get("algorithm", config.get("algorithm"))
    if options:
        algo = f"{algo} (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")"
    wall = results.get("wall_time_s")
    acc = results.get("test_accuracy")
    iters = results.get("iterations")
    planned = config.get("iterations")
    machine = results.get("machine") or {}
    rows = [
        ("dataset", results.get("dataset", config.get("dataset"))),
        ("algorithm", algo),
        ("labels", labels),
        ("unlabeled samples", results.get("num_unlabeled")),
        ("model", results.get("model", config.get("model"))),
        ("iterations", iters if iters is not None else f"unfinished (planned {planned})"),
        ("wall time", f"{wall / 60:.1f} min ({wall:.0f} s)" if isinstance(wall, (int, float)) else None),
        ("seed", results.get("split_seed", config.get("seed"))),
        ("final EMA test accuracy", f"{acc:.4f}" if isinstance(acc, (int, float)) else None),
    ]
    if evaluation is not None:
        rows.append(("macro-F1 / ECE (re-evaluated)", f"{_num(evaluation['macro_f1'])} / {_num(evaluation['ece'])}"))
    if machine:
        rows.append(("machine", f"{machine.get('device', '?')}, {machine.get('cpu_count', '?')} CPUs, torch {machine.get('torch', '?')}"))
    return [(k, _cell(v)) for k, v in rows]


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:1160px;margin:0 auto;padding:24px 20px 40px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 16px;font-size:14px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0 4px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:24px}.card span{color:#5b6475;font-size:13px}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #dde1e8;padding:4px 10px;text-align:left}th{background:#eef0f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:8px;text-align:center}
figure img{max-width:100%;height:auto}figcaption{color:#5b6475;font-size:12px;margin-top:4px}
.note{color:#5b6475;font-size:13px}
"""


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


PLOTTED = ("step", "train_time_s", "lr", "loss", "sup", "unsup", "mask_rate", "pseudo_label_acc", "test_acc", "test_acc_raw",
           "val_acc", "knn_acc", "alignment", "uniformity", "emb_spread")


def build_report(run_name: str, results: dict, config: dict, rows: list[dict], evaluation: dict | None,
                 test_x: torch.Tensor | None, test_probs: torch.Tensor | None, test_y: torch.Tensor | None,
                 notes: Sequence[str] = (), stages: Sequence[dict[str, str]] = ()) -> tuple[str, dict[str, bytes]]:
    """The report: HTML with every image embedded, and the PNGs by name. Nothing is written here.

    ``stages``: for a pipeline, one row per stage (column -> cell), shown side by side above the final model's figures.
    """
    pngs: dict[str, bytes | None] = {
        "accuracy": line_plot(rows, [("test_acc", "EMA model (test)", "-o"), ("test_acc_raw", "raw model (test)", "--s"),
                                      ("val_acc", "EMA model (validation)", ":^")], "Accuracy during training", "accuracy", True),
        "loss": line_plot(rows, [("sup", "supervised", "-o"), ("unsup", "unsupervised", "--s")]
                           + ([] if metric_series(rows, "sup")[0] else [("loss", "total", "-o")]),
                           "Training loss", "loss (mean since last evaluation)", False),
        "pseudo_labels": line_plot(rows, [("mask_rate", "mask rate (share above threshold)", "-o"),
                                           ("pseudo_label_acc", "pseudo-label accuracy (hidden labels)", "--s")],
                                    "Pseudo-labels on the unlabeled batch", "share", True),
        "representation": line_plot(rows, [("knn_acc", "kNN, labeled set as memory", "-o"),
                                            ("test_acc", "EMA model's head (linear probe)", "--s")],
                                     "Representation: test accuracy of cheap classifiers", "accuracy", True)
        if metric_series(rows, "knn_acc")[0] else None,
        "geometry": line_plot(rows, [("alignment", "alignment (lower: views closer)", "-o"),
                                      ("uniformity", "uniformity (lower: more spread)", "--s"),
                                      ("emb_spread", "embedding spread (0: collapsed)", ":^")],
                               "Embedding geometry of the test set", "value", False),
    }
    classes = (evaluation or {}).get("classes") or list((results.get("test") or {}).get("per_class_accuracy", {}))
    cm = (evaluation or {}).get("confusion_matrix") or (results.get("test") or {}).get("confusion_matrix")
    pngs["confusion"] = confusion_png(cm, classes) if cm and classes else None
    served = (evaluation or {}).get("served")  # the probabilities predict serves (TTA, temperature): what the diagram judges
    pngs["reliability"] = (reliability_png(served["reliability"], served["ece"], served["temperature"], evaluation["ece"])
                           if served else reliability_png(evaluation["reliability"], evaluation["ece"]) if evaluation else None)
    picks: list[int] = []
    if test_x is not None and test_probs is not None and test_y is not None and test_x.dim() == 4:
        picks = confident_mistakes(test_probs, test_y)
        pngs["mistakes"] = mistakes_png(test_x, test_probs, test_y, classes, picks) if picks else None
    else:
        pngs["mistakes"] = None

    acc = results.get("test_accuracy", (evaluation or {}).get("accuracy"))
    cards = [("final EMA test accuracy", _num(acc) if isinstance(acc, (int, float)) else "-")]
    if evaluation is not None:
        cards += [("macro-F1", _num(evaluation["macro_f1"])), (f"ECE ({evaluation['ece_bins']} bins)", _num(evaluation["ece"], 3)),
                  ("test samples", str(evaluation["n"]))]
    sub = [results.get("dataset", config.get("dataset")), results.get("algorithm", config.get("algorithm")),
           f"{results.get('num_labeled', '?')} labels", f"fewlabels {results.get('fewlabels_version', '?')}"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>fewlabels report: {html.escape(run_name)}</title><style>{_CSS}</style></head><body><main>",
           f"<h1>fewlabels report: {html.escape(run_name)}</h1>",
           f'<p class="sub">{" · ".join(_cell(v) for v in sub)}</p>',
           '<div class="cards">' + "".join(f'<div class="card"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                                            for k, v in cards) + "</div>",
           "<h2>Run</h2><table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"
                                           for k, v in _header(results, config, evaluation)) + "</table>"]
    out += [f'<p class="note">{html.escape(n)}</p>' for n in [*results.get("warnings", []), *notes]]
    if stages:
        out.append("<h2>Pipeline stages</h2><table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in stages[0]) + "</tr>"
                   + "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in stages)
                   + "</table><p class=\"note\">The figures below are the final stage's.</p>")
        taught = [row for row in stages if row.get("taught by", "-") != "-"]
        if taught:  # an encoder pipeline: which foundation encoder's head the student learned from
            out.append("<p>Taught by the foundation encoder " + ", ".join(
                f"{html.escape(row['taught by'])} (stage {html.escape(row['stage'])}: a head on its embeddings)"
                for row in taught) + ".</p>")

    def figures(names_captions: list[tuple[str, str]]) -> str:
        items = [_img(pngs[n], n, c) for n, c in names_captions if pngs.get(n)]
        return '<div class="grid">' + "".join(items) + "</div>" if items else ""

    curves = figures([("accuracy", "Test accuracy of the EMA model (reported) and the raw model, at each evaluation."),
                      ("loss", "Mean training losses between evaluations.")])
    out.append("<h2>Learning curves</h2>" + (curves or '<p class="note">No metrics.csv rows to plot.</p>'))
    if pngs["representation"] or pngs["geometry"]:
        out.append("<h2>Representation</h2>" + figures([
            ("representation", "Weighted cosine kNN (k=20) and the online linear probe on the EMA model's features."),
            ("geometry", "Alignment and uniformity (Wang and Isola) and the collapse monitor, on test embeddings.")]))
    other = {k: v for k, v in (rows[-1] if rows else {}).items() if k not in PLOTTED and v is not None}
    if other:
        out.append("<h2>Other figures at the last evaluation</h2><table>" + "".join(
            f'<tr><th>{html.escape(k)}</th><td class="n">{_num(v)}</td></tr>' for k, v in other.items()) + "</table>")
    if pngs["pseudo_labels"]:
        out.append("<h2>Pseudo-labels</h2>" + figures([("pseudo_labels", "Share of unlabeled samples above the confidence "
                                                        "threshold, and how often those pseudo-labels match the hidden labels.")]))
    out.append("<h2>Test set</h2>" + (figures([("confusion", "Rows: true class; columns: predicted class."),
                                                ("reliability", "Top-class confidence against accuracy, in equal-width "
                                                 "bins, of the probabilities predict serves (the run's temperature and "
                                                 "test-time augmentation)." if served else "Top-class confidence against "
                                                 "accuracy, in equal-width bins.")])
                                       or '<p class="note">No test set to evaluate.</p>'))
    if evaluation is not None:
        out.append("<h2>Per class</h2><table><tr><th>class</th><th>support</th><th>accuracy</th><th>F1</th></tr>" + "".join(
            f'<tr><td>{html.escape(c)}</td><td class="n">{r["support"]}</td><td class="n">{_num(r["accuracy"])}</td>'
            f'<td class="n">{_num(r["f1"])}</td></tr>' for c, r in evaluation["per_class"].items()) + "</table>")
    if pngs["mistakes"]:
        out.append("<h2>Most confident mistakes</h2>" + figures([("mistakes", f"The {len(picks)} wrong test predictions with the "
                                                                    "highest confidence: true class, predicted class, confidence.")]))
    elif evaluation is not None and test_x is not None and test_x.dim() == 4:
        out.append('<h2>Most confident mistakes</h2><p class="note">No mistakes on the test set.</p>')
    out.append("</main></body></html>")
    return "\n".join(out) + "\n", {k: v for k, v in pngs.items() if v is not None}
