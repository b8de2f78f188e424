"""``fewlabels embed``: a run's features of a dataset, or a foundation encoder's (``--encoder``), as an .npz that
``train --dataset`` (and other tools) read."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_data_flags, add_overwrite, add_run_dir, output_file, run_and_data

NAME = "embed"
HELP = ("write a run's (or a foundation encoder's) features of a dataset as an .npz (X, y, X_test, y_test, classes) "
        "that train --dataset reads")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p, "a run folder (or a model file saved by Run.save); with --encoder, the image dataset to embed")
    add_data_flags(p, "the data to embed (default: the run's own)")
    p.add_argument("--encoder", metavar="NAME_OR_PATH", help="embed with a foundation encoder instead of a run: a folder "
                   "written by transformers' save_pretrained or a Hugging Face model id already in the local cache "
                   "(needs pip install 'fewlabels[foundation]'); the positional then names the dataset")
    p.add_argument("--out", required=True, metavar="EMB.npz", help="the .npz file to write")
    add_overwrite(p, "--out")


def run(args: argparse.Namespace) -> int:
    from fewlabels.errors import FewLabelsError
    from fewlabels.evaluate.probe import embeddings_npz

    if not args.out.endswith(".npz"):
        raise FewLabelsError(f"--out must name an .npz file, got {args.out}.")
    out = output_file(args.out, ".npz", overwrite=args.overwrite)
    if args.encoder is not None:
        return _run_encoder(args, out)
    trained, source = run_and_data(args.run_dir, args.dataset, args.data_dir, "embed")
    cfg = trained.config
    arrays = embeddings_npz(trained.model, source, channels_last=trained.is_image and cfg.channels_last)
    return _write(arrays, source, out, "features")


def _run_encoder(args: argparse.Namespace, out) -> int:
    """``embed DATASET --encoder NAME_OR_PATH``: the dataset's images through a foundation encoder."""
    from fewlabels import data as data_mod
    from fewlabels.errors import FewLabelsError
    from fewlabels.foundation import embeddings_npz, load_encoder

    if args.dataset is not None:
        raise FewLabelsError(f"with --encoder the positional names the dataset ({args.run_dir}); drop --dataset "
                             f"{args.dataset}.")
    source = data_mod.load(args.run_dir, args.data_dir)
    if not source.train.is_image:
        raise FewLabelsError(f"{args.run_dir} holds features, not images; --encoder embeds images.")
    encoder = load_encoder(args.encoder)
    return _write(embeddings_npz(encoder, source), source, out, f"features of {encoder.name}")


def _write(arrays: dict, source, out, what: str) -> int:
    """The .npz that ``train --dataset`` reads, written atomically (never over a user's file), and one line saying so."""
    import io

    import numpy as np

    from fewlabels.utils.io import write_output

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_output(out, buf.getvalue(), "npz")
    print(f"{len(arrays['X'])} training and {len(arrays.get('X_test', []))} test samples of {source.train.name} as "
          f"{arrays['X'].shape[1]}-d {what} written to {out}")
    return 0
