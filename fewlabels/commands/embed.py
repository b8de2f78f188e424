"""``fewlabels embed``: a run's features of a dataset, as an .npz that ``train --dataset`` (and other tools) read."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_data_flags, add_overwrite, add_run_dir, output_file, run_and_data

NAME = "embed"
HELP = "write a run's features of a dataset as an .npz (X, y, X_test, y_test, classes) that train --dataset reads"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    add_data_flags(p, "the data to embed (default: the run's own)")
    p.add_argument("--out", required=True, metavar="EMB.npz", help="the .npz file to write")
    add_overwrite(p, "--out")


def run(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from fewlabels.errors import FewLabelsError
    from fewlabels.evaluate.probe import embeddings_npz
    from fewlabels.utils.io import write_output

    if not args.out.endswith(".npz"):
        raise FewLabelsError(f"--out must name an .npz file, got {args.out}.")
    out = output_file(args.out, ".npz", overwrite=args.overwrite)
    trained, source = run_and_data(args.run_dir, args.dataset, args.data_dir, "embed")
    cfg = trained.config
    arrays = embeddings_npz(trained.model, source, channels_last=trained.is_image and cfg.channels_last)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_output(out, buf.getvalue(), "npz")
    print(f"{len(arrays['X'])} training and {len(arrays.get('X_test', []))} test samples of {source.train.name} as "
          f"{arrays['X'].shape[1]}-d features written to {out}")
    return 0
