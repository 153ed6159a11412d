"""Defaults that the command line shows in its help, kept here so that reading them
imports nothing heavy (``arasfsr --help`` must not load torch)."""

DEFAULT_MODEL = "arasfsr"

# Outputs above this many pixels are refused unless the caller raises the limit.
DEFAULT_MAX_PIXELS = 4096 * 4096

# The face model of `restore`, `video` and the web app's Restore tab: real photos are blurred,
# noisy and compressed, and the model trained on such faces measured better on them
# (protocol R) and paints no blotches on the real-world faces (docs/degradations.md).
DEFAULT_FACE_MODEL = "arasfsr-real"
