"""arasfsr: arbitrary-resolution, arbitrary-scale face super-resolution (ARASFSR, WACV 2024).

The public names are imported on first use, so that ``import arasfsr.registry`` (the
model names) and ``arasfsr --help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First, before any module of ours imports torch: OpenMP's wait policy (see openmp.py).
from .openmp import WAIT_POLICY as OPENMP_WAIT_POLICY
from .errors import ArasfsrError, InputError, ModelError  # noqa: I001

__version__ = "0.2.0"

_LAZY = {"Upscaler": "api", "load_model": "api", "output_size": "api", "load_checkpoint": "checkpoint",
         "save_checkpoint": "checkpoint", "create_model": "models", "list_models": "registry"}

if TYPE_CHECKING:
    from .api import Upscaler, load_model, output_size
    from .checkpoint import load_checkpoint, save_checkpoint
    from .models import create_model
    from .registry import list_models


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["ArasfsrError", "InputError", "ModelError", "Upscaler", "create_model", "list_models",
           "load_checkpoint", "load_model", "output_size", "save_checkpoint", "__version__"]
