"""``python -m arasfsr.cli`` (as torchrun runs it): the same as the ``arasfsr`` command."""

import sys

from .main import main

sys.exit(main())
