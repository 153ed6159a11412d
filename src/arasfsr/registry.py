"""Named models: architecture presets and the trained weights shipped in the package.

``list_models()`` gives every name ``load_model`` accepts. A name with a file
``weights/NAME.safetensors`` in the package is a trained model (its card is
``weights/NAME.json``); the presets below are the paper's configurations, built with
random weights when asked with ``pretrained=False`` (for training and tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .defaults import DEFAULT_MODEL

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Preset:
    arch: str
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _presets() -> dict[str, Preset]:
    out: dict[str, Preset] = {"bicubic": Preset("bicubic", {}, "bicubic interpolation (anti-aliased)")}
    encoders = {"e": ("edsr-baseline", "EDSR-baseline"), "r": ("rdn", "RDN")}
    for key, (enc, enc_name) in encoders.items():
        out[f"{key}-arasfsr"] = Preset("arasfsr", {"encoder": enc}, f"ARASFSR, {enc_name} encoder (paper)")
        out[f"{key}-liif"] = Preset("liif", {"encoder": enc}, f"LIIF, {enc_name} encoder")
        out[f"{key}-lte"] = Preset("lte", {"encoder": enc}, f"LTE, {enc_name} encoder")
        out[f"{key}-diinn"] = Preset("diinn", {"encoder": enc}, f"DIINN, {enc_name} encoder")
    out["sparnet"] = Preset("sparnet", {}, "SPARNet, fixed x8 face SR (other sizes: resized output)")
    for flag, switch, what in (("L", "frequency", "local frequency estimation"),
                               ("G", "modulation", "global coordinate modulation"),
                               ("S", "skip", "skip connection")):
        out[f"e-arasfsr-{flag}"] = Preset("arasfsr", {"encoder": "edsr-baseline", switch: False},
                                          f"ARASFSR(-{flag}) ablation: without {what}")
    return out


PRESETS: dict[str, Preset] = _presets()


def register_preset(name: str, preset: Preset) -> None:
    PRESETS[name] = preset


def shipped_weights(name: str) -> Path | None:
    path = WEIGHTS_DIR / f"{name}.safetensors"
    return path if path.is_file() else None


def list_models() -> dict[str, dict[str, Any]]:
    """Every known name -> {arch, trained, description}."""
    from .checkpoint import read_card, read_metadata

    rows: dict[str, dict[str, Any]] = {}
    for name, p in PRESETS.items():
        rows[name] = {"arch": p.arch, "trained": p.arch == "bicubic", "description": p.description}
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        arch, _ = read_metadata(path)
        card = read_card(path)
        rows[path.stem] = {"arch": arch, "trained": True,
                           "description": card.get("description", "trained weights")}
    return dict(sorted(rows.items(), key=lambda kv: (kv[0] != DEFAULT_MODEL, kv[0])))
