"""The ``edgeport`` command: one subcommand per stage.

Each stage owns ``edgeport/<stage>/cli.py`` with ``register(subparsers)``;
those modules are light (argparse only) so ``edgeport run`` works on a device
without TensorFlow. A stage whose CLI module is missing simply has no
subcommand.

Exit codes (every subcommand): 0 done; 1 done, but the result failed a check
(a scheme failed to export, every bench variant failed, a --max-drop gate, a
run that classified no frame or whose video ended early); 2 bad input (an
edgeport error, printed as one line, or a usage error); 130 Ctrl-C; 143
SIGTERM. Ctrl-C and SIGTERM unwind normally: temporary folders are removed,
worker processes are stopped, and no output is left half-written. (In
``edgeport run`` a signal during the loop is how a camera run ends: the loop
stops, the summary is printed, exit 0.)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from edgeport import __version__
from edgeport.errors import EdgeportError
from edgeport.flags import EdgeportParser, help_text

#: (module with register(subparsers)) in the order shown by --help.
COMMAND_MODULES = (
    "edgeport.build.cli",
    "edgeport.export.cli",
    "edgeport.runtime.cli",
    "edgeport.benchmarks.cli",
    "edgeport.pipeline",
)


class Terminated(BaseException):
    """SIGTERM as an exception: not an ``Exception``, so it unwinds like Ctrl-C through every
    ``finally`` and context manager (temporary folders, worker processes, atomic writes)."""

    exit_code = 128 + signal.SIGTERM  # 143, what a shell reports for a SIGTERM'd process


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def _pixels(text: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels like 50000000 or 5e7, received '{text}'")
    return value


_PIXELS_HELP = help_text("refuse (skip and count) images with more pixels than this, read from the file header "
                         "before decoding", "50000000, or env EDGEPORT_MAX_IMAGE_PIXELS")
#: -v/-q: accepted before the command and after it (edgeport doctor -q)
_VERBOSITY = (
    (("-v", "--verbose"), help_text("debug logging, and other libraries' log lines (TensorFlow's C++ logging, CUDA "
                                    "probes, converter notices) that are hidden otherwise", "off")),
    (("-q", "--quiet"), help_text("warnings, errors and results only; no progress output", "off")),
)


def make_parser() -> argparse.ArgumentParser:
    parser = EdgeportParser(
        prog="edgeport",
        description="Train an image classifier, export it for devices, run it on a camera, benchmark it.",
        epilog="Every command takes -v/-q after its name too, and --config FILE where it has options.",
    )
    parser.add_argument("--version", action="version", version=f"edgeport {__version__}",
                        help="print the version and exit")
    for flags, text in _VERBOSITY:
        parser.add_argument(*flags, action="store_true", help=text)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the stage has no CLI yet
                continue
            raise
        module.register(sub)
    parser.add_argument("--max-image-pixels", type=_pixels, metavar="N", help=_PIXELS_HELP)
    for command in sub.choices.values():  # also after the command: edgeport build ... --max-image-pixels N -q
        # argparse has no public "does this parser have the option": its option index is the only way to ask
        if "--max-image-pixels" not in command._option_string_actions:  # noqa: SLF001 - see above
            command.add_argument("--max-image-pixels", type=_pixels, metavar="N", default=argparse.SUPPRESS,
                                 help=_PIXELS_HELP)
        for flags, text in _VERBOSITY:
            command.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    chatter = None
    if not args.verbose:
        # TensorFlow reads this once, when it is imported (in the command handlers, after this line); what
        # ignores it (LiteRT, the MLIR quantizer, absl before InitializeLog) is dropped from fd 2 by the filter
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from edgeport.chatter import StderrFilter

        chatter = StderrFilter()
        chatter.start()  # (a no-op in-process under pytest's capture)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="edgeport: %(message)s", stream=sys.stderr)
    for name in ("tensorflow", "absl", "tf2onnx", "h5py"):  # their Python-side notices, as for their C++ ones
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    from edgeport.contract import printable

    previous, pixels, env_pixels = None, None, None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if args.max_image_pixels is not None:
            from edgeport.imaging import MAX_PIXELS_ENV, set_max_image_pixels

            pixels = set_max_image_pixels(args.max_image_pixels)
            env_pixels = os.environ.get(MAX_PIXELS_ENV)
            os.environ[MAX_PIXELS_ENV] = str(args.max_image_pixels)  # and in child processes (pipeline's run)
        return int(args.func(args) or 0)
    except EdgeportError as exc:
        # one line, no terminal control characters (a label or file name from a file may carry them)
        print(f"edgeport {args.command}: error: {printable(str(exc), limit=4000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeport {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"edgeport {args.command}: terminated (SIGTERM); cleaned up", file=sys.stderr)
        return Terminated.exit_code
    finally:
        if chatter is not None:
            chatter.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if pixels is not None:  # main() called in-process (tests): leave the limit as it was
            from edgeport.imaging import MAX_PIXELS_ENV, set_max_image_pixels

            set_max_image_pixels(pixels)
            if env_pixels is None:
                os.environ.pop(MAX_PIXELS_ENV, None)
            else:
                os.environ[MAX_PIXELS_ENV] = env_pixels


if __name__ == "__main__":
    sys.exit(main())
