"""The table of bench/selection.py's results in BENCHMARKS.md (bench/report.py calls ``table``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from selection_cells import BUDGETS, FIXMATCH, LONG, LONG_BUDGETS, NOISE, PEER_STRATEGIES, STRATEGIES  # noqa: E402


def _pct(values: list[float]) -> str:
    from common import mean_std

    if not values:
        return "—"
    m, sd = mean_std(values)
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def _rounds(cells: list[dict], part: str, dataset: str, name: str) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for c in cells:
        if c["part"] == part and c["dataset"] == dataset and c["name"] == name:
            for r in c["rounds"]:
                out.setdefault(r["labels"], []).append(r)
    return out


def table(record: dict) -> str:
    from common import mean_std

    cells, m = record["cells"], record["machine"]
    datasets = [d for d in ("fashion-mnist", "digits", "fashion-mnist-pca") if any(c["dataset"] == d for c in cells)]
    emb = {c["dataset"]: c["embedding"] for c in cells}
    lines = [f"## {record['title']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores shared with other work, torch {m['torch']}, one thread, "
             f"{m['date']}. Reproduce: `{record['command']}`.", "",
             "Simulated labeling rounds from zero labels (10, then 20, then 40 labels in all; an oracle gives the true "
             "class). The downstream learners are cheap stand-ins for FixMatch, on frozen embeddings: **label spreading** "
             "(scikit-learn, kNN kernel k=10, over the pool) and a **linear probe** (logistic regression, C=10). "
             "Accuracy on the test set (never selected on), mean ± std over 3 seeds (each seed: its own pool of "
             f"{record['pool']:,} training images on Fashion-MNIST, its own clustering and draws). Uncertainty "
             "strategies (margin, entropy, badge) take their first round at random (no model yet); between rounds "
             "their model is the linear probe. *balanced* is today's class-balanced random split; *random* is a "
             "uniform draw. fewlabels' strategies other than random apply the class-coverage pass once a model "
             "exists (a class the model predicts but nobody labeled gets a pick first; margin, entropy and badge "
             "also spread each round's picks over the predicted classes). "
             f"*auto* = typiclust below {record['switch_per_class']} labels per class, margin from there.", ""]
    for d in datasets:
        names = [n for n in STRATEGIES if _rounds(cells, "rounds", d, n)]
        if not names:
            continue
        lines += [f"### {d}: label spreading (linear probe) test accuracy %, classes covered ({emb[d]})", "",
                  "| strategy | " + " | ".join(f"{b} labels" for b in BUDGETS) + " | classes covered at 10 / 20 / 40 | "
                  "selection s / round |", "|---" * (len(BUDGETS) + 3) + "|"]
        for n in names:
            by = _rounds(cells, "rounds", d, n)
            accs = [f"{_pct([r['spreading'] for r in by.get(b, [])])} ({_pct([r['linear'] for r in by.get(b, [])])})"
                    for b in BUDGETS]
            cov = " / ".join(f"{mean_std([r['classes_covered'] for r in by.get(b, [])])[0]:.1f}" for b in BUDGETS)
            sel = mean_std([r["select_s"] for b in BUDGETS for r in by.get(b, [])])[0]
            lines.append(f"| {n} | " + " | ".join(accs) + f" | {cov} | {sel:.2f} |")
        lines.append("")
        longs = [n for n in LONG if set(LONG_BUDGETS) <= set(_rounds(cells, "rounds", d, n))]
        if longs:
            lines += [f"Where uncertainty overtakes typicality ({d}, label spreading %, later rounds 80 / 160 / 320 labels; "
                      "auto switches at "
                      f"{record['switch_per_class']} per class):", "",
                      "| strategy | " + " | ".join(f"{b}" for b in LONG_BUDGETS[3:]) + " |", "|---" * 4 + "|"]
            for n in longs:
                by = _rounds(cells, "rounds", d, n)
                lines.append(f"| {n} | " + " | ".join(_pct([r["spreading"] for r in by[b]]) for b in LONG_BUDGETS[3:]) + " |")
            lines.append("")
    fm = [c for c in cells if c["part"] == "fixmatch"]
    if fm:
        lines += ["### The headline cell with FixMatch: Fashion-MNIST, 20 labels picked from zero", "",
                  f"FixMatch from scratch (`cnn`, {FIXMATCH['iterations']} iterations, labeled batch "
                  f"{FIXMATCH['batch_size']}, unlabeled ratio {FIXMATCH['uratio']}: bench/methods.py's short budget) on "
                  "the seed's pool, whose only labels are the 20 picked in two rounds of 10 (the same picks as above); "
                  "final EMA model's test accuracy.", "",
                  "| picks | test accuracy % | seeds | classes covered | train s / seed |", "|---|---|---|---|---|"]
        for n in ("auto", "random"):
            cs = [c for c in fm if c["name"] == n]
            if cs:
                lines.append(f"| {n} | {_pct([c['test_accuracy'] for c in cs])} | {len(cs)} | "
                             f"{mean_std([c['classes_covered'] for c in cs])[0]:.1f} | "
                             f"{mean_std([c['train_s'] for c in cs])[0]:.0f} |")
        lines.append("")
    cov = [c for c in cells if c["part"] == "coverage"]
    if cov:
        lines += ["### Classes covered, 10 seeds (selection only)", "",
                  "| dataset | picks | all 10 classes at 10 labels | at 20 labels | mean classes at 20 |", "|---|---|---|---|---|"]
        for d in datasets:
            for n in ("auto", "random", "balanced"):
                cs = [c for c in cov if c["dataset"] == d and c["name"] == n]
                if cs:
                    full10 = sum(c["covered"]["10"] == 10 for c in cs)
                    full20 = sum(c["covered"]["20"] == 10 for c in cs)
                    mean20 = mean_std([c["covered"]["20"] for c in cs])[0]
                    lines.append(f"| {d} | {n} | {full10} of {len(cs)} | {full20} of {len(cs)} | {mean20:.1f} |")
        lines.append("")
    peers = [c for c in cells if c["part"] == "peers"]
    if peers:
        lines += ["### Peer check: scikit-activeml's strategies on the same embeddings, budgets and learners", "",
                  "Label spreading test accuracy % at 10 / 20 / 40 labels, and the selection time summed over the three "
                  "rounds (s, same machine, same process kind). scikit-activeml runs with its defaults except "
                  "TypiClust's k=20 neighbours (the paper's, as in fewlabels) and ProbCover's class count; its margin "
                  "sampling refits the same logistic regression. fewlabels' rows include its class-coverage pass.", "",
                  "| dataset | strategy | fewlabels | scikit-activeml | fewlabels s | scikit-activeml s |", "|---|---|---|---|---|---|"]
        for d in datasets:
            for n in PEER_STRATEGIES:
                peer = _rounds(cells, "peers", d, n)
                ours = _rounds(cells, "rounds", d, n)
                if not peer:
                    continue
                fmt = (lambda by: " / ".join(_pct([r["spreading"] for r in by.get(b, [])]) for b in BUDGETS))
                secs = (lambda by: sum(r["select_s"] for b in BUDGETS for r in by.get(b, [])) / max(len(by.get(BUDGETS[0], [])), 1))
                lines.append(f"| {d} | {n} | {fmt(ours)} | {fmt(peer)} | {secs(ours):.1f} | {secs(peer):.1f} |")
        lines.append("")
    lab = [c for c in cells if c["part"] in ("labels", "labels-peers")]
    if lab:
        lines += [f"### Label checking: planted symmetric noise, {record['labels_per_class']} labels per class", "",
                  "Precision / recall / F1 of the flagged samples against the flipped ones, mean over 3 seeds. cleanlab's "
                  "`find_label_issues` (defaults) gets the very probabilities fewlabels flags from (the mean of cross-fitted, "
                  "augmented-view and neighbour probabilities), and also the cross-fitted ones alone.", "",
                  "| dataset | noise | method | precision | recall | F1 | seconds |", "|---|---|---|---|---|---|---|"]
        for d in datasets:
            for noise in NOISE:
                cs = [c for c in lab if c["dataset"] == d and c["name"] == f"noise{noise}"]
                peer_cs = [c for c in cs if c["part"] == "labels-peers"]
                use = peer_cs or cs
                for method in ("fewlabels", "cleanlab", "cleanlab_crossfit_only"):
                    rs = [c[method] for c in use if method in c]
                    if rs:
                        f = {k: mean_std([r[k] for r in rs])[0] for k in ("precision", "recall", "f1", "seconds")}
                        lines.append(f"| {d} | {int(100 * noise)}% | {method} | {f['precision']:.2f} | {f['recall']:.2f} | "
                                     f"{f['f1']:.2f} | {f['seconds']:.2f} |")
        lines.append("")
    notes = Path(__file__).resolve().parent / "notes" / "select.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)
