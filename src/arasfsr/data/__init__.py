"""Face datasets: where they live, and the degradations that make their low-resolution inputs."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ARASFSR_DATA"
# src/arasfsr/data/__init__.py -> the checkout; its data sits beside it (shared/data).
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """The folder holding ``utkface/``, ``ffhq/`` and ``realworld/``, for every command.

    In order: ``explicit`` (``--data-root``/``--data``, or a config's ``data.root``), then
    ``$ARASFSR_DATA``, then ``shared/data`` beside the checkout when it exists, else
    ``../shared/data`` relative to the working directory.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return _BESIDE_CHECKOUT if _BESIDE_CHECKOUT.is_dir() else Path("..") / "shared" / "data"
