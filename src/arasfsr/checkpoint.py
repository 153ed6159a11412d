"""Checkpoints: safetensors weights with the architecture config in their metadata.

A checkpoint is ONE ``.safetensors`` file whose metadata holds ``arasfsr.arch`` and
``arasfsr.config`` (a JSON object); a sidecar ``NAME.json`` next to it, when present,
is the model card. Nothing is ever unpickled: pickle-based files are refused.

Reading what a checkpoint describes (:func:`read_header`, :func:`read_card`) needs no
torch: the safetensors header is an 8-byte little-endian length and a JSON object.
Loading refuses, as "not a valid arasfsr checkpoint", a config that does not fit the
architecture's constructor, tensors that do not match the model it describes, and
weights that are not finite (they would give black images).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write, atomic_write_text
from .errors import ModelError

if TYPE_CHECKING:
    import torch

    from .models import SuperResolver

PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}
MAX_HEADER = 100 << 20  # safetensors' own limit on the header's size
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


@dataclass(frozen=True)
class Header:
    """What a checkpoint file describes, read without its weights."""

    arch: str
    config: dict[str, Any]
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)


def save_checkpoint(model: SuperResolver, path: str | Path, card: dict[str, Any] | None = None,
                    half: bool = False) -> Path:
    """Write ``model`` to ``path`` (.safetensors) atomically; ``card`` to ``path.json``."""
    from safetensors.torch import save_file

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


def read_header(path: str | Path) -> Header:
    """The architecture, config and tensor shapes a checkpoint holds, without torch.

    The config is checked to be a JSON object here; against the architecture's
    signature when the model is built (:func:`load_checkpoint`).
    """
    path = check_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = path.stat().st_size
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER, size - 8):
                raise ValueError(f"header length {n} does not fit the file ({size} bytes)")
            header = json.loads(f.read(n))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise invalid(path, f"unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise invalid(path, "its safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or "arasfsr.arch" not in meta:
        raise ModelError(f"{path}: safetensors file without an arasfsr architecture config")
    arch, text = meta["arasfsr.arch"], meta.get("arasfsr.config", "{}")
    if not isinstance(arch, str) or not isinstance(text, str):
        raise invalid(path, "its metadata values must be strings")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid(path, f"its config metadata is not JSON: {text[:60]!r}") from None
    if not isinstance(config, dict):
        raise invalid(path, f"its config metadata must be a JSON object, got {type(config).__name__}")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        try:
            tensors[name] = (str(info["dtype"]), tuple(int(v) for v in info["shape"]))
        except (KeyError, TypeError, ValueError):
            raise invalid(path, f"tensor {name!r} has no valid dtype and shape") from None
    return Header(arch, config, tensors)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> SuperResolver:
    """Build the model a checkpoint describes and load its weights (as float32)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = verify_checkpoint(path)
    path = Path(path)
    model = _build(path, header)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise invalid(path, f"cannot read its weights ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise invalid(path, f"{len(broken)} of its tensors hold NaN or infinite values (first: {broken[0]}); "
                            "the model would give blank images")
    model.load_state_dict(state)
    return model.to(device).eval()


def verify_checkpoint(path: str | Path) -> Header:
    """The header of a checkpoint whose config builds its architecture and whose tensors
    are exactly that model's; the model is built on torch's meta device (no memory)."""
    import torch

    header = read_header(path)
    with torch.device("meta"):
        model = _build(Path(path), header)
    _check_tensors(Path(path), header, model.state_dict())
    return header


def _build(path: Path, header: Header) -> SuperResolver:
    from .models import create_model

    try:
        return create_model(header.arch, **header.config)
    except ModelError as exc:
        raise invalid(path, str(exc)) from None


def _check_tensors(path: Path, header: Header, expected: dict[str, Any]) -> None:
    """The file's tensors are exactly the model's: names, shapes, float or not."""
    missing = [k for k in expected if k not in header.tensors]
    unexpected = [k for k in header.tensors if k not in expected]
    if missing or unexpected:
        raise invalid(path, f"weights do not match the {header.arch} config (missing {len(missing)}, "
                            f"unexpected {len(unexpected)}: {', '.join((missing + unexpected)[:3])})")
    for name, tensor in expected.items():
        dtype, shape = header.tensors[name]
        if shape != tuple(tensor.shape):
            raise invalid(path, f"tensor {name} has shape {list(shape)}, the {header.arch} config "
                                f"needs {list(tensor.shape)}")
        if (dtype in FLOAT_DTYPES) != tensor.is_floating_point():
            raise invalid(path, f"tensor {name} is {dtype}, the model needs {str(tensor.dtype).removeprefix('torch.')}")


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card ``NAME.json`` beside a checkpoint ({} when there is none)."""
    card = Path(path).with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"{card}: unreadable model card ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{card}: a model card must be a JSON object")
    return data


def check_path(path: str | Path) -> Path:
    """``path`` if it is a file that is not a pickle."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
        raise ModelError(f"{path}: pickle-based checkpoints are refused (they can run code); "
                         "re-save the weights as .safetensors in a trusted environment")
    return path


def invalid(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: not a valid arasfsr checkpoint: {why}")


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":  # a safetensors header (its length may well start with 0x80)
        return False
    # Pickle protocol 2+ starts with 0x80; torch zip archives with PK.
    return head[:1] == b"\x80" or head[:2] == b"PK"
