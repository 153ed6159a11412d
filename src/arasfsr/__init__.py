"""arasfsr: arbitrary-resolution, arbitrary-scale face super-resolution (ARASFSR, WACV 2024)."""

from .api import Upscaler, load_model, output_size
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import ArasfsrError, InputError, ModelError
from .models import create_model
from .registry import list_models

__version__ = "0.1.0"

__all__ = ["ArasfsrError", "InputError", "ModelError", "Upscaler", "create_model", "list_models",
           "load_checkpoint", "load_model", "output_size", "save_checkpoint", "__version__"]
