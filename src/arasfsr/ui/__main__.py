"""``python -m arasfsr.ui [--host H] [--port N] [--model NAME]``: the same as ``arasfsr ui``."""

from ..entry import exit_module
from .command import main

if __name__ == "__main__":
    exit_module(main())
