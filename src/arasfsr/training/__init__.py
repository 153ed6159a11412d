"""Training with Lightning: configs, step-keyed data, safetensors checkpoints, export.

``train("paper/A-arasfsr", out="runs/a")`` is what ``arasfsr train`` runs.
"""

from .config import list_configs, load_config
from .run import train

__all__ = ["list_configs", "load_config", "train"]
