"""``python -m arasfsr.ui [--host H] [--port N] [--model NAME]``: the same as ``arasfsr ui``."""

import sys

from ..cli.main import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
