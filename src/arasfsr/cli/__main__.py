"""``python -m arasfsr.cli`` (as torchrun runs it): the same as the ``arasfsr`` command."""

from .main import main
from ..entry import exit_module

exit_module(main())
