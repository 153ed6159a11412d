"""arasfsr's development tools: benchmarks (``tools.bench``), device sessions, research
studies and the generator of RESULTS.md. They are not part of the installed package. Run them
from the repository root as ``python -m tools.NAME``; they import ``arasfsr`` from the
editable install (``pip install -e .``) or from ``PYTHONPATH=src``."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root
