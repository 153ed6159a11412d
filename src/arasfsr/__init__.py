"""arasfsr: arbitrary-resolution, arbitrary-scale face super-resolution (ARASFSR, WACV 2024).

The public names are imported on first use, so that ``import arasfsr.registry`` (the
model names) and ``arasfsr --help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ArasfsrError, InputError, ModelError

__version__ = "0.1.0"

_LAZY = {"Upscaler": "api", "load_model": "api", "output_size": "api", "load_checkpoint": "checkpoint",
         "save_checkpoint": "checkpoint", "create_model": "models", "list_models": "registry"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["ArasfsrError", "InputError", "ModelError", "Upscaler", "create_model", "list_models",
           "load_checkpoint", "load_model", "output_size", "save_checkpoint", "__version__"]
