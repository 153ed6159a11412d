"""Lightning training checkpoints without pickle: tensors in safetensors, the rest JSON.

Lightning's own ``.ckpt`` is a pickle, which the house never loads. This plugin walks
the checkpoint dictionary, stores every tensor under a numbered key of ONE
``.safetensors`` file and the structure (with the numbers, tuples, Counters and
non-string dict keys tagged) as JSON in that file's metadata. Writes are atomic
(temporary file + rename), so a kill during a save leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write
from ..errors import ModelError

META_KEY = "arasfsr.training_state"
_TAGGED = {"dict": dict, "OrderedDict": OrderedDict, "Counter": Counter}


def encode(obj: Any, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> Any:
    """JSON-able form of ``obj``; its tensors are moved into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, where) for v in obj]}
    if isinstance(obj, list):
        return [encode(v, tensors, where) for v in obj]
    if isinstance(obj, dict):
        kind = type(obj).__name__
        if kind == "dict" and all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        if kind not in _TAGGED:
            raise TypeError(f"{where}: cannot store a {kind} without pickle")
        return {"__items__": [[encode(k, tensors, where), encode(v, tensors, f"{where}.{k}")]
                              for k, v in obj.items()], "__type__": kind}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} without pickle")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__dtype__" in obj:
        return getattr(torch, obj["__dtype__"])
    if "__items__" in obj:
        items = [(_key(decode(k, tensors)), decode(v, tensors)) for k, v in obj["__items__"]]
        return _TAGGED[obj["__type__"]](dict(items))  # Counter(list) would count the pairs
    return {k: decode(v, tensors) for k, v in obj.items()}


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k  # JSON has no tuples; keys must hash


def save_state(checkpoint: dict[str, Any], path: str | Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = encode(checkpoint, tensors)
    meta = {META_KEY: json.dumps(structure, allow_nan=True)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def check_state(path: str | Path) -> dict[str, str]:
    """The metadata of an arasfsr training checkpoint (its header only); anything else is refused."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several kinds; all mean "not ours"
        raise ModelError(f"{path}: not a readable training checkpoint ({exc})") from None
    if META_KEY not in meta:
        raise ModelError(f"{path}: not an arasfsr training checkpoint (no training state inside)")
    try:
        json.loads(meta[META_KEY])
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: damaged training checkpoint (its state is not JSON: {exc})") from None
    return meta


def load_state(path: str | Path) -> dict[str, Any]:
    meta = check_state(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelError(f"{path}: not a readable training checkpoint ({exc})") from None
    return decode(json.loads(meta[META_KEY]), tensors)


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O, as safetensors + JSON (never pickle)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_state(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        return load_state(path)

    def remove_checkpoint(self, path: Any) -> None:
        if os.path.exists(path):
            os.remove(path)
