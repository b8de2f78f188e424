"""The command line: ``fewlabels train``, ``pipeline``, ``demo`` and the rest (``fewlabels --help`` lists them).

One module per command in ``fewlabels.commands``; this is the entry point (the ``fewlabels``
script, ``python -m fewlabels``). Bad input ends in one sentence on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fewlabels.commands.common import EXIT_BAD_INPUT, EXIT_FAILED, OneLineParser, UsageError, error, run_command

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from fewlabels import __version__
    from fewlabels.commands import MODULES

    parser = OneLineParser(prog="fewlabels", description="Train classifiers from a few labels plus unlabeled data.")
    parser.add_argument("--version", action="version", version=f"fewlabels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in MODULES:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from fewlabels.commands import COMMANDS

    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        error(str(exc))
        return EXIT_BAD_INPUT
    return run_command(COMMANDS[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
