"""``python -m arasfsr.ui [--host H] [--port N] [--model NAME]``: the same as ``arasfsr ui``."""

import argparse
import sys

from ..errors import ArasfsrError
from .command import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arasfsr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ui", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ArasfsrError as exc:
        print(f"arasfsr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
