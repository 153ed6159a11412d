"""Architectures, by name. ``create_model("arasfsr", encoder="rdn")`` builds one.

Every model is a :class:`~arasfsr.models.core.SuperResolver`; the implicit ones share
the query core in :mod:`arasfsr.models.core`.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from .arasfsr import ARASFSR
from .bicubic import Bicubic
from .core import ImplicitSR, SuperResolver
from .diinn import DIINN
from .liif import LIIF
from .lte import LTE
from .sparnet import SPARNet

ARCHITECTURES: dict[str, type[SuperResolver]] = {}


def register_architecture(cls: type[SuperResolver]) -> type[SuperResolver]:
    ARCHITECTURES[cls.arch] = cls
    return cls


for _cls in (ARASFSR, LIIF, Bicubic, LTE, DIINN, SPARNet):
    register_architecture(_cls)


def create_model(arch: str, **config: Any) -> SuperResolver:
    """A freshly initialised model of architecture ``arch`` with ``config`` overrides."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    try:
        return ARCHITECTURES[arch](**config)
    except TypeError as exc:
        raise ModelError(f"bad configuration for {arch!r}: {exc}") from None


__all__ = ["ARCHITECTURES", "ImplicitSR", "SuperResolver", "create_model", "register_architecture"]
