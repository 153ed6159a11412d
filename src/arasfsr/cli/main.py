"""The ``arasfsr`` command: a thin layer over the Python API.

Every user-facing problem (an :class:`~arasfsr.errors.ArasfsrError`, a usage error, running
out of memory) is printed as one line ``arasfsr: error: ...`` with exit status 2, never a
traceback. Anything else is a bug: one line saying so, exit status 1, and the traceback
when the environment variable ``ARASFSR_DEBUG=1`` is set.

Each module in :data:`COMMANDS` adds its sub-commands with ``register(subparsers)`` and
binds each to its function with ``set_defaults(func=...)``; a new sub-command is one more
module in that list.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback

from .. import __version__
from ..errors import ArasfsrError, known_problem
from . import evaluate, faces, train, ui, uncertainty, upscale, video
from .common import EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser

COMMANDS = (upscale, evaluate, uncertainty, faces, video, train, ui)
DESCRIPTION = ("Face super-resolution to any size or scale: ARASFSR (WACV 2024) and its baselines. "
               "Each command's options: arasfsr COMMAND --help.")

EXIT_BUG = 1
DEBUG_ENV = "ARASFSR_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="arasfsr", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"arasfsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``--size -5x10`` -> ``--size=-5x10``, so that argparse reports the bad value itself
    instead of "expected one argument" (it takes ``-5x10`` for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--scale", "--size") and re.match(r"-[\d.]", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0, 2 for user errors, 1 for bugs)."""
    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("arasfsr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `arasfsr models | head -1`: quietly, like other tools
        try:  # stop Python's own flush at exit from failing again on the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except Exception as exc:
        message = str(exc) if isinstance(exc, ArasfsrError) else known_problem(exc)
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
        if message is not None:
            print(f"arasfsr: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"arasfsr: error: internal error, this is a bug in arasfsr ({type(exc).__name__}: {first}); "
              f"rerun with {DEBUG_ENV}=1 to see the traceback and please report it", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
