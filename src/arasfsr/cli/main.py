"""The ``arasfsr`` command: a thin layer over the Python API.

Every user-facing problem is one line ``arasfsr: error: ...`` with exit status 2, never a
traceback; a bug is one line and exit status 1 (:mod:`arasfsr.entry`, which runs it).

Each module in :data:`COMMANDS` adds its sub-commands with ``register(subparsers)`` and
binds each to its function with ``set_defaults(func=...)``; a new sub-command is one more
module in that list.
"""

from __future__ import annotations

import argparse
import re
import sys

from .. import __version__
from ..entry import ArgumentParser, exit_module, run_command
from . import evaluate, faces, train, ui, uncertainty, upscale, video

COMMANDS = (upscale, evaluate, uncertainty, faces, video, train, ui)
DESCRIPTION = ("Face super-resolution to any size or scale: ARASFSR (WACV 2024) and its baselines. "
               "Each command's options: arasfsr COMMAND --help.")


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
    return run_command(build_parser(), _glue_negative_values(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    exit_module(main())
