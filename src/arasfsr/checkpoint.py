"""Checkpoints: safetensors weights with the architecture config in their metadata.

A checkpoint is ONE ``.safetensors`` file whose metadata holds ``arasfsr.arch`` and
``arasfsr.config`` (JSON); a sidecar ``NAME.json`` next to it, when present, is the
model card. Nothing is ever unpickled: pickle-based files are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .atomic import atomic_write, atomic_write_text
from .errors import ModelError
from .models import SuperResolver, create_model

PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}


def save_checkpoint(model: SuperResolver, path: str | Path, card: dict[str, Any] | None = None,
                    half: bool = False) -> Path:
    """Write ``model`` to ``path`` (.safetensors) atomically; ``card`` to ``path.json``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    meta = {"arasfsr.arch": model.arch, "arasfsr.config": json.dumps(model.config)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    if card is not None:
        atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return path


def read_metadata(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(arch, config) stored in a checkpoint, without loading its weights."""
    path = _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if "arasfsr.arch" not in meta:
        raise ModelError(f"{path}: safetensors file without an arasfsr architecture config")
    return meta["arasfsr.arch"], json.loads(meta.get("arasfsr.config", "{}"))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> SuperResolver:
    """Build the model a checkpoint describes and load its weights (as float32)."""
    arch, config = read_metadata(path)
    model = create_model(arch, **config)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: cannot read weights ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not match the {arch} config "
                         f"(missing {len(missing)}, unexpected {len(unexpected)})")
    return model.to(device).eval()


def read_card(path: str | Path) -> dict[str, Any]:
    card = Path(path).with_suffix(".json")
    return json.loads(card.read_text()) if card.is_file() else {}


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
        raise ModelError(f"{path}: pickle-based checkpoints are refused (they can run code); "
                         "re-save the weights as .safetensors in a trusted environment")
    return path


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    # Pickle protocol 2+ starts with 0x80; torch zip archives with PK.
    return head[:1] == b"\x80" or head[:2] == b"PK"

