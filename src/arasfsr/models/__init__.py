"""Architectures, by name. ``create_model("arasfsr", encoder="rdn")`` builds one.

Every model is a :class:`~arasfsr.models.core.SuperResolver`; the implicit ones share
the query core in :mod:`arasfsr.models.core`. Every module of this package is imported
here, so a model file that registers its class (``@register_model``) is all it takes
to add an architecture and its presets.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..architectures import ARCHITECTURES
from ..errors import ModelError
from .core import ImplicitSR, SuperResolver

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def create_model(arch: str, **config: Any) -> SuperResolver:
    """A freshly initialised model of architecture ``arch`` with ``config`` overrides
    (checked against its constructor's signature: ModelError when it does not fit)."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**config)


__all__ = ["ARCHITECTURES", "ImplicitSR", "SuperResolver", "create_model"]
