"""How a command runs as a process: ``arasfsr`` and ``python -m arasfsr.ui`` both run here.

Every user-facing problem (an :class:`~arasfsr.errors.ArasfsrError`, a usage error, running
out of memory) is printed as one line ``arasfsr: error: ...`` with exit status 2, never a
traceback. Anything else is a bug: one line saying so, exit status 1, and the traceback
when the environment variable ``ARASFSR_DEBUG=1`` is set.

Nothing heavy is imported here: building a parser for ``--help`` and usage errors stays instant.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from typing import NoReturn

from .atomic import Terminated, signals_raise
from .errors import ArasfsrError, known_problem

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
FOLDER_COMMANDS = ("upscale", "restore", "align")  # runs with a report (arasfsr.folders)
# Called when a signal or Ctrl-C stops a command: a run's report says so (folders registers it).
ON_INTERRUPT: list[Callable[[], None]] = []
DEBUG_ENV = "ARASFSR_DEBUG"


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors on one line with exit status 2, whichever sub-command."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"arasfsr: error: {message} (see `{self.prog} --help`)\n")


def whole_number(text: str) -> int | None:
    """``12``, ``2e7``, ``16_777_216`` -> int; None for anything that is not a whole number."""
    if not re.fullmatch(r"\s*[\d_.eE+-]+\s*", text):
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        return None
    return int(value) if value == value and abs(value) != float("inf") and value == int(value) else None


def parse_count(text: str, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (the one check of every integer option)."""
    value = whole_number(text)
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: give a whole number of at least {minimum}")
    return value


def exit_module(status: int) -> NoReturn:
    """``sys.exit(status)`` for ``python -m ...`` entry points.

    CPython remembers a KeyboardInterrupt that ended code run from a string (``exec``/``eval``
    in a library) even when we caught it, and under ``-m`` then replaces our exit status with a
    death by SIGINT; evaluating a string clears that memory."""
    exec("")
    sys.exit(status)


def _stopped(stop: KeyboardInterrupt | Terminated) -> int:
    """Run the interrupt hooks, say how the run was stopped and return its exit status."""
    for hook in ON_INTERRUPT:
        hook()
    if isinstance(stop, Terminated):
        print(f"arasfsr: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    print("arasfsr: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _signal_behind(exc: BaseException | None) -> KeyboardInterrupt | Terminated | None:
    """The Ctrl-C or SIGTERM an error stands for: Python 3.11 wraps whatever a class body's
    ``__set_name__`` raises (a signal landing while a lazy import builds a dataclass) in a
    RuntimeError."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def run_command(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Parse ``argv`` and run the function the parser bound (``set_defaults(func=...)``);
    returns the exit status (0, 2 for user errors, 1 for bugs)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        # Runs over many inputs: SIGTERM and SIGHUP stop them like Ctrl-C, so that the report
        # says what was done (a service manager, a closed terminal).
        with signals_raise() if getattr(args, "command", None) in FOLDER_COMMANDS else nullcontext():
            return args.func(args) or 0
    except (KeyboardInterrupt, Terminated) as stop:
        return _stopped(stop)
    except BrokenPipeError:  # e.g. `arasfsr models | head -1`: quietly, like other tools
        try:  # stop Python's own flush at exit from failing again on the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except Exception as exc:
        stop = _signal_behind(exc)
        if stop is not None:
            return _stopped(stop)
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
