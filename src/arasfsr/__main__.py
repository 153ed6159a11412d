"""``python -m arasfsr``: the same as the ``arasfsr`` command."""

from .cli.main import main
from .entry import exit_module

exit_module(main())
