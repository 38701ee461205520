"""The ``edgeport`` command: one subcommand per stage.

Each stage owns ``edgeport/<stage>/cli.py`` with ``register(subparsers)``;
those modules are light (argparse only) so ``edgeport run`` works on a device
without TensorFlow. A stage whose CLI module is missing simply has no
subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edgeport import __version__
from edgeport.errors import EdgeportError

#: (module with register(subparsers)) in the order shown by --help.
COMMAND_MODULES = (
    "edgeport.build.cli",
    "edgeport.export.cli",
    "edgeport.runtime.cli",
    "edgeport.benchmarks.cli",
    "edgeport.pipeline",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeport",
        description="Train an image classifier, export it for devices, run it on a camera, benchmark it.",
    )
    parser.add_argument("--version", action="version", version=f"edgeport {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the stage has no CLI yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="edgeport: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeportError as exc:
        print(f"edgeport {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeport {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
