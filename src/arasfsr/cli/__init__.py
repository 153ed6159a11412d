"""The ``arasfsr`` command, one module per group of sub-commands (see :mod:`arasfsr.cli.main`)."""
