"""The ``ui`` sub-command: ``arasfsr ui [--host 127.0.0.1] [--port N] [--model NAME|PATH]``
(its options and its start live with the web app, which ``python -m arasfsr.ui`` runs too)."""

from __future__ import annotations

import argparse

from ..ui.command import add_options, run

__all__ = ["register", "run"]


def register(subparsers) -> argparse.ArgumentParser:
    return add_options(subparsers.add_parser(
        "ui", help="serve the local web app (upscale, restore, compare) in a browser"))
