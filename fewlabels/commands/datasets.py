"""``fewlabels datasets``: the built-in datasets and where each was found."""

from __future__ import annotations

import argparse
import json

NAME = "datasets"
HELP = "list the built-in datasets and where each was found"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from fewlabels import data

    rows = [{"name": name, "description": description, "found": data.where(name, args.data_dir)}
            for name, description in data.BUILTIN.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        status = r["found"] or "NOT FOUND (apt-get install dataset-fashion-mnist, or --data-dir / $FEWLABELS_DATA)"
        print(f"{r['name']:<15} {r['description']}\n{'':<15} found: {status}")
    return 0
