"""Model names: ONE resolver for shipped weights, presets, architectures and paths.

Everything in arasfsr that reads a model name (``load_model``, ``arasfsr models``,
training configs, the benchmarks) asks :func:`resolve`, which tries in this order:

1. a path (it has a ``/`` or a suffix): that checkpoint file;
2. a name with ``weights/NAME.safetensors`` in the package: a shipped model, trained
   (its card is ``weights/NAME.json``; ``bicubic`` ships this way too, with no tensors);
   in a checkout of the repository, also ``weights/research/NAME.safetensors`` at its root:
   the research models, which the wheel leaves out (``weights/research.json`` in the
   package names them, so that an installation without them says where they are);
3. a preset, declared beside its model class (``@register_model`` in ``models/*.py``);
4. an architecture name: its default config;
5. an existing file without a suffix.

Presets and architectures come with random weights only. :func:`list_models` lists
the shipped models without importing torch (it reads the safetensors headers by hand);
``include_presets=True`` adds the presets, which imports the models.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .architectures import ARCHITECTURES, PRESETS, TIERS, Preset, bind_config
from .checkpoint import read_card, read_header, verify_checkpoint
from .defaults import DEFAULT_MODEL
from .errors import ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"
# The repository's research models (the paper's tables, ablations, cpu-tier reproductions):
# weights that users of the default model do not need, so they stay out of the wheel.
RESEARCH_DIR = Path(__file__).resolve().parents[2] / "weights" / "research"


@dataclass(frozen=True)
class ModelEntry:
    """What a model name or path stands for."""

    name: str
    arch: str
    config: dict[str, Any]
    weights: Path | None  # the .safetensors file; None: random initialisation only
    card: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    kind: str = "shipped"  # shipped | file | preset | architecture

    @property
    def trained(self) -> bool:
        return self.weights is not None

    def check(self) -> ModelEntry:
        """This entry, once its config fits the architecture and its checkpoint's tensors
        fit the model (the weights themselves are not read; imports the models)."""
        if self.weights is not None:
            verify_checkpoint(self.weights)
        else:
            check_config(self.arch, self.config)
        return self

    def info(self) -> dict[str, Any]:
        """What ``arasfsr models --info`` prints: the entry, then the model card."""
        path = {"path": str(self.weights)} if self.kind == "file" else {}
        return {"name": self.name, **path, "arch": self.arch, "trained": self.trained,
                "description": self.description, "config": self.config, **self.card}


def resolve(name_or_path: str | Path, *, trained: bool = False) -> ModelEntry:
    """The model a name or path stands for; ``trained=True`` refuses one without weights
    (unless its architecture needs none)."""
    name = str(name_or_path)
    path = Path(name)
    if isinstance(name_or_path, Path) or "/" in name or path.suffix:
        entry = _file_entry(path, path.stem, "file")
    elif (weights := shipped_weights(name)) is not None:
        entry = _file_entry(weights, name, "shipped")
    elif name in research_models():
        raise ModelError(f"{name!r} is a research model: {WHERE_RESEARCH}")
    elif name in _presets():
        p = PRESETS[name]
        entry = ModelEntry(name, p.arch, dict(p.config), None, description=p.description, kind="preset")
    elif name in ARCHITECTURES:
        entry = ModelEntry(name, name, {}, None, description=_architecture_title(name), kind="architecture")
    elif path.is_file():
        entry = _file_entry(path, path.stem, "file")
    else:
        raise ModelError(f"unknown model {name!r}; `arasfsr models` lists the names")
    if trained and not entry.trained and ARCHITECTURES[entry.arch].needs_weights:
        if name == DEFAULT_MODEL:  # an installation without the shipped weights
            raise ModelError(f"the default model {name!r} has no trained weights in this installation; "
                             "pass --model with a trained name from `arasfsr models` (e.g. bicubic) "
                             "or a .safetensors checkpoint")
        raise ModelError(f"no trained weights for {name!r} are shipped in this installation; "
                         "use a trained name from `arasfsr models` or a .safetensors path")
    return entry


def list_models(include_presets: bool = False) -> dict[str, dict[str, Any]]:
    """Shipped models (and with ``include_presets`` the presets) -> {arch, trained, description},
    the default model first. Without presets, torch is not imported."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(p for folder in weight_dirs() for p in folder.glob("*.safetensors")):
        entry = _file_entry(path, path.stem, "shipped")
        rows.setdefault(entry.name, {"arch": entry.arch, "trained": True, "description": entry.description})
    if include_presets:
        for name, p in _presets().items():
            rows.setdefault(name, {"arch": p.arch, "trained": False, "description": p.description})
    return dict(sorted(rows.items(), key=lambda kv: (kv[0] != DEFAULT_MODEL, kv[0])))


def presets() -> dict[str, Preset]:
    """Every preset, by name (imports the models, which declare them)."""
    return dict(_presets())


def weight_dirs() -> list[Path]:
    """The folders of named weights: the package's, then a checkout's research models."""
    return [WEIGHTS_DIR, *([RESEARCH_DIR] if RESEARCH_DIR.is_dir() else [])]


def shipped_weights(name: str) -> Path | None:
    return next((path for folder in weight_dirs() if (path := folder / f"{name}.safetensors").is_file()), None)


WHERE_RESEARCH = ("the research weights come with the repository (weights/research/), not with the installed package: "
                  "clone the repository and install it with `pip install -e .`")


def research_models() -> dict[str, str]:
    """The research models by name -> description, present here or not (``weights/research.json``)."""
    path = WEIGHTS_DIR / "research.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def missing_research_models() -> list[str]:
    """The research models this installation does not have (all of them in an installed wheel)."""
    return [name for name in research_models() if shipped_weights(name) is None]


def tier_sizes(arch: str, tier: str | None) -> dict[str, Any]:
    """The network sizes an architecture declares for a budget tier ({} for none)."""
    _presets()
    return copy.deepcopy(TIERS.get(arch, {}).get(tier or "", {}))


def check_config(arch: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` checked against the architecture's constructor, defaults applied."""
    _presets()
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return bind_config(ARCHITECTURES[arch].__init__, config, f"config of {arch!r}")


def _file_entry(path: Path, name: str, kind: str) -> ModelEntry:
    header = read_header(path)
    card = read_card(path)
    description = str(card.get("description", f"{header.arch} checkpoint"))
    return ModelEntry(name, header.arch, header.config, path, card, description, kind)


def _presets() -> dict[str, Preset]:
    from . import models  # noqa: F401  (importing the models registers them)

    return PRESETS


def _architecture_title(arch: str) -> str:
    """The first line of the model file's docstring."""
    import sys

    cls = ARCHITECTURES[arch]
    module = sys.modules.get(cls.__module__)
    doc = (module.__doc__ if module else None) or cls.__doc__ or arch
    return f"{doc.strip().splitlines()[0]} (default config)"
