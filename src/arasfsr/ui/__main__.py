"""``python -m arasfsr.ui [--host H] [--port N] [--model NAME]``: the same as ``arasfsr ui``."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
