"""Defaults that the command line shows in its help, kept here so that reading them
imports nothing heavy (``arasfsr --help`` must not load torch)."""

DEFAULT_MODEL = "arasfsr"

# Outputs above this many pixels are refused unless the caller raises the limit.
DEFAULT_MAX_PIXELS = 4096 * 4096

# The face model of `restore`, `video` and the web app's face tabs.
DEFAULT_FACE_MODEL = DEFAULT_MODEL
