"""``python -m arasfsr``: the same as the ``arasfsr`` command."""

import sys

from .cli.main import main

sys.exit(main())
