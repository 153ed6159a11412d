"""Training configurations: YAML files with ``include``s, short names and ``--set`` overrides.

A config names its protocol, its model (a preset of :data:`arasfsr.registry.PRESETS`,
with optional ``model_args`` overrides) and its data, training and validation settings.
``include: [a.yaml, b.yaml]`` merges other files first (paths relative to the including
file; later files and the file itself win). A tier file may give network sizes per
architecture in ``tier_model_args: {arch: {...}}``.

Short names such as ``paper/A-arasfsr`` resolve to the configs shipped in
``arasfsr/configs/<tier>/<protocol>-<model>.yaml``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": None,
    "protocol": None,
    "tier": None,
    "model": None,            # preset name (or an architecture name)
    "model_args": {},         # overrides of the preset's config
    "tier_model_args": {},    # per-architecture sizes of a budget tier
    "data": {
        "root": "../shared/data",  # relative to the working directory; --data-root overrides
        "train": "utkface/train",
        "val": "utkface/val",
        "limit": None,             # use only this many training faces (a fixed subset)
        "lr_size": 64,             # int, or [min, max]: one LR size per batch
        "hr_size": None,           # int, or [min, max]: drawn per sample
        "scale": None,             # [min, max]: HR = LR x s per sample (instead of hr_size)
        "max_hr": None,            # never make HR larger than this (the ground truth size)
        "degradation": "bicubic",  # bicubic | nn-jpeg | mixture
        "sample_q": 2304,          # HR pixels queried per sample (null: all)
        "flip": True,              # horizontal flips only: faces are aligned
        "num_workers": 0,
        "crop_aug": None,          # {scale: [lo, hi], ratio: [lo, hi]}: a random crop per face (recipes)
        "pipeline": "workers",     # workers: Pillow per sample in loader processes | device: see device_data
    },
    "val": {
        "lr_size": 64,
        "hr_size": 96,
        "degradation": "bicubic",
        "count": 50,
        "batch_size": 10,
    },
    "train": {
        "iterations": 1000,
        "batch_size": 16,          # global batch, split over DDP ranks
        "lr": 1.0e-4,
        "lr_decay_at": 0.5,        # fraction of the iterations where the LR drops
        "lr_gamma": 0.1,
        "charbonnier_delta": 1.0e-3,
        "kl_weight": 0.0,
        "seed": 0,
        "val_every": 500,          # validation, then a checkpoint, every this many steps
        "precision": "auto",       # auto: bf16-mixed on CUDA, 32-true on CPU
        "log_every": 10,
        "keep_checkpoints": "latest",  # latest | all
        "loss": "charbonnier",     # charbonnier | l1
        "betas": [0.9, 0.999],     # Adam's
        "fused_adam": False,       # Adam as one fused kernel (same maths)
        "warmup": 0,               # steps of linear learning-rate warm-up
        "lr_schedule": "step",     # step: x lr_gamma at lr_decay_at | cosine: from lr_decay_at down to lr x lr_gamma
        "ema_decay": 0.999,        # EMA of the weights (exported and validated); null: none
        "compile": False,          # torch.compile the forward + loss: true or a mode ("reduce-overhead": CUDA graphs)
        "channels_last": False,    # NHWC convolutions (tensor cores prefer them)
        "time_budget_s": None,     # stop by this wall time, the schedule fitted to the steps that fit
        "profile": False,          # time data wait / forward / backward / optimiser per step (syncs the device)
    },
    "recipe": None,                # filled from training/recipes.py: the model's authors' recipe, if any
}


def resolve_path(name: str | Path) -> Path:
    """A config file path, or a short name like ``paper/A-arasfsr``."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (str(name) if str(name).endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    raise InputError(f"{name}: no such config file or shipped config (shipped: {', '.join(list_configs())})")


def list_configs() -> list[str]:
    """Every shipped config as a short name, ``tier/protocol-model``."""
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix(""))
                  for p in CONFIG_DIR.glob("*/*.yaml")
                  if not p.name.startswith("_") and p.parent.name != "protocols")


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: dictionaries merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise InputError(f"{path}: circular include")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a config must be a mapping")
    out: dict[str, Any] = {}
    for inc in raw.pop("include", None) or []:
        out = merge(out, _read(path.parent / inc, seen + (path,)))
    return merge(out, raw)


def apply_override(cfg: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``train.iterations=20000``: a dotted key and a YAML value."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise InputError(f"--set {assignment!r}: use KEY=VALUE, e.g. train.iterations=20000")
    value = yaml.safe_load(text) if text else None
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            if part not in node:
                raise InputError(f"--set {key}: unknown key {part!r}")
            raise InputError(f"--set {key}: {part!r} is not a section")
        node = node[part]
    if parts[-1] not in node and parts[0] not in ("model_args", "tier_model_args"):
        raise InputError(f"--set {key}: unknown key (known here: {', '.join(sorted(node))})")
    node[parts[-1]] = value
    return cfg


def load_config(name: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The full config: defaults, then the file (and its includes), then ``overrides``."""
    from .recipes import apply_recipe

    path = resolve_path(name)
    cfg = merge(DEFAULTS, _read(path))
    if cfg["recipe"] is None:  # a written config.yaml already holds its recipe
        cfg = apply_recipe(cfg, _arch_of(cfg["model"]))
    if cfg["name"] is None:
        cfg["name"] = path.stem
    for item in overrides or []:
        apply_override(cfg, item)
    validate(cfg)
    return cfg


def _arch_of(model: Any) -> Any:
    from ..registry import PRESETS

    return PRESETS[model].arch if model in PRESETS else model


def _range(value: Any, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or lo <= 0 or hi < lo:
        raise InputError(f"config {what}: expected a positive number or [min, max], got {value!r}")
    return lo, hi


def validate(cfg: dict[str, Any]) -> None:
    from ..data.degrade import DEGRADATIONS
    from ..models import ARCHITECTURES
    from ..registry import PRESETS

    if cfg["model"] not in PRESETS and cfg["model"] not in ARCHITECTURES:
        raise InputError(f"config model {cfg['model']!r} is not a known preset or architecture "
                         f"(known: {', '.join(sorted(set(PRESETS) | set(ARCHITECTURES)))})")
    data, train, val = cfg["data"], cfg["train"], cfg["val"]
    _range(data["lr_size"], "data.lr_size")
    if (data["hr_size"] is None) == (data["scale"] is None):
        raise InputError("config data: give exactly one of hr_size and scale")
    _range(data["hr_size"], "data.hr_size")
    _range(data["scale"], "data.scale")
    for section, kind in (("data", data["degradation"]), ("val", val["degradation"])):
        if kind not in DEGRADATIONS + ("mixture",):
            raise InputError(f"config {section}.degradation {kind!r}: choose from "
                             f"{', '.join(DEGRADATIONS + ('mixture',))}")
    for key in ("iterations", "batch_size", "val_every"):
        if not isinstance(train[key], int) or train[key] < 1:
            raise InputError(f"config train.{key} must be a positive integer, got {train[key]!r}")
    if data["limit"] is not None and (not isinstance(data["limit"], int) or data["limit"] < 1):
        raise InputError(f"config data.limit must be a positive integer or null, got {data['limit']!r}")
    if data["sample_q"] is not None and (not isinstance(data["sample_q"], int) or data["sample_q"] < 1):
        raise InputError(f"config data.sample_q must be a positive integer or null")
    for key, allowed in (("data.pipeline", ("workers", "device")), ("train.loss", ("charbonnier", "l1")),
                         ("train.lr_schedule", ("step", "cosine"))):
        section, name = key.split(".")
        if cfg[section][name] not in allowed:
            raise InputError(f"config {key} {cfg[section][name]!r}: choose from {', '.join(allowed)}")
    decay = train["ema_decay"]
    if decay is not None and not (isinstance(decay, (int, float)) and 0 < decay < 1):
        raise InputError(f"config train.ema_decay must be in (0, 1) or null, got {decay!r}")


def model_spec(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(arch, kwargs) of the configured model: preset, then tier sizes, then ``model_args``."""
    from ..registry import PRESETS, Preset

    preset = PRESETS.get(cfg["model"]) or Preset(cfg["model"])
    args = merge(preset.config, (cfg.get("tier_model_args") or {}).get(preset.arch, {}) or {})
    return preset.arch, merge(args, cfg.get("model_args") or {})
