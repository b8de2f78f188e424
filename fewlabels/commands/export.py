"""``fewlabels export``: the model as TorchScript (or ONNX), for serving without fewlabels."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_overwrite, add_run_dir, load_run, output_file

NAME = "export"
HELP = "save the model as TorchScript (or ONNX) for serving without fewlabels"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP)
    add_run_dir(p)
    p.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript")
    p.add_argument("--out", help="the file to write (default RUN_DIR/model.ts or model.onnx)")
    add_overwrite(p, "--out")


def run(args: argparse.Namespace) -> int:
    from fewlabels import export

    out = output_file(export.default_path(args.run_dir, args.format) if args.out is None else args.out, export.FORMATS[args.format],
                      overwrite=args.overwrite)
    if args.format == "onnx":
        export.require_onnx()  # before loading the model
    trained = load_run(args.run_dir)
    export.export(trained, out, args.format)
    shape = f"(N, {', '.join(map(str, trained.sample_shape))})"
    kind = f"float images {shape} on 0..1" if trained.is_image else f"float features {shape}"
    classes = trained.classes
    print(f"wrote {out} ({args.format}): takes {kind}, returns logits (N, {len(classes)}) "
          f"for classes {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}")
    return 0
