"""``fewlabels report``: an HTML report of a run folder with learning curves, confusion matrix, calibration and mistakes."""

from __future__ import annotations

import argparse
import sys

from fewlabels.commands.common import add_overwrite, add_quiet, add_run_dir, load_run, output_file

NAME = "report"
HELP = "write an HTML report with learning curves, confusion matrix, calibration and mistakes"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p, "a run folder")
    p.add_argument("--out", metavar="REPORT.html", help="the HTML file (default RUN_DIR/report.html); plots go to RUN_DIR/report/")
    p.add_argument("--dataset", help="test data to use when the run's own cannot be found (as for evaluate)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    add_overwrite(p, "--out and the plots in RUN_DIR/report/")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from fewlabels.evaluate.runs import check_report_dir, write_report
    from fewlabels.storage import resolve_run
    from fewlabels.storage.ownership import PLOTS, PLOTS_FOLDER
    from fewlabels.train.pipeline import stage_rows
    from fewlabels.utils.io import check_replaceable

    given = check_report_dir(args.run_dir)
    run_dir = resolve_run(given)  # a pipeline folder: its final stage's run, with every stage side by side
    out = output_file(given / "report.html" if args.out is None else args.out, ".html", overwrite=args.overwrite)
    for name in PLOTS:  # an earlier report's plots are replaced (or dropped) only when fewlabels wrote them
        check_replaceable(run_dir / PLOTS_FOLDER / f"{name}.png", args.overwrite,
                          instead=f"move it out of {run_dir / PLOTS_FOLDER}, where report writes its plots,")
    written = write_report(load_run(str(run_dir)), run_dir, out, args.dataset, args.data_dir, args.quiet,
                           stages=stage_rows(given))
    for warning in written.warnings:
        print(f"fewlabels: warning: {warning}", file=sys.stderr)
    print(f"wrote {written.html} ({written.size / 1024:.0f} KB, self-contained) and {len(written.plots)} plots in {written.png_dir}/")
    return 0
