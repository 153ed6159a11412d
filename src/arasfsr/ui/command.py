"""The web app's command, ``arasfsr ui [--host 127.0.0.1] [--port N] [--model NAME|PATH]``,
also run as ``python -m arasfsr.ui``: its options and how it starts. Gradio is imported
only to serve, after the model has loaded."""

from __future__ import annotations

import argparse
import sys

from ..entry import ArgumentParser, parse_count, run_command

INSTALL_HINT = "the web app needs the ui extra: pip install 'arasfsr[ui]'"


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..defaults import DEFAULT_MODEL  # not registry: building the parser stays light

    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=parse_port, default=None, metavar="N",
                        help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                        help=f"model preselected in the page (default {DEFAULT_MODEL})")
    parser.set_defaults(func=run)
    return parser


def parse_port(text: str) -> int:
    """A TCP port, 1 to 65535, read like every other whole number of the command line."""
    port = parse_count(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a port between 1 and 65535")
    return port


def run(args: argparse.Namespace) -> int:
    from ..errors import ArasfsrError
    from .jobs import ModelCache

    cache = ModelCache()
    cache.model(args.model)  # a wrong name fails before the (slow) import of Gradio
    try:
        from .app import serve
    except ImportError as exc:
        if getattr(exc, "name", "") and exc.name.split(".")[0] in ("gradio", "gradio_client"):
            raise ArasfsrError(INSTALL_HINT) from None
        raise
    serve(args.host, args.port, args.model, cache)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m arasfsr.ui``: the same options, messages and exit statuses as ``arasfsr ui``."""
    parser = add_options(ArgumentParser(prog="arasfsr ui"))
    return run_command(parser, list(sys.argv[1:] if argv is None else argv))
