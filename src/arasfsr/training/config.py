"""Training configurations: short names, YAML files with ``include``s, ``--set`` overrides.

A config names its protocol (a record of :data:`arasfsr.protocols.PROTOCOLS`, which gives
the data sizes, degradation and validation), its model (a name :func:`arasfsr.registry.resolve`
knows: usually a preset, with optional ``model_args`` overrides) and its tier's data,
training and validation settings. ``include: [a.yaml, b.yaml]`` merges other files first
(paths relative to the including file; later files and the file itself win). The network
sizes of a tier are declared by each model beside its class (``tiers=`` of
``@register_model``); ``tier_model_args: {arch: {...}}`` may still override them.

A short name ``TIER/PROTOCOL-MODEL`` (e.g. ``paper/A-arasfsr``) is made from the tier file
``arasfsr/configs/TIER/_tier.yaml``, the protocol record and the model; a file
``arasfsr/configs/TIER/PROTOCOL-MODEL.yaml`` is kept only for a config that differs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..data.degrade import DEGRADATIONS
from ..errors import InputError
from ..protocols import PROTOCOLS, get_protocol

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
TIER_FILE = "_tier.yaml"

DEFAULTS: dict[str, Any] = {
    "name": None,
    "protocol": None,
    "tier": None,
    "model": None,            # a model name: preset, architecture, shipped model or checkpoint
    "model_args": {},         # overrides of the preset's config
    "tier_model_args": {},    # overrides of the tier sizes the models declare, per architecture
    "data": {
        "root": None,              # null: arasfsr.data.resolve_data_root (--data-root overrides)
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


def tiers() -> list[str]:
    """The shipped tiers: folders of ``configs/`` with a tier file."""
    return sorted(p.parent.name for p in CONFIG_DIR.glob(f"*/{TIER_FILE}"))


def list_configs() -> list[str]:
    """Every shipped config as a short name, ``tier/protocol-model``."""
    made = {f"{tier}/{p.name}-{model}" for tier in tiers() for p in PROTOCOLS.values() for model in p.models}
    files = {str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.glob("*/*.yaml")
             if not p.name.startswith("_")}
    return sorted(made | files)


def preset_of(model: str) -> str:
    """The preset a config name's model means: the configs use the EDSR-baseline encoder
    (the paper's E- models), so ``arasfsr`` is ``e-arasfsr``; other names are presets as given."""
    from ..registry import presets

    return f"e-{model}" if f"e-{model}" in presets() else model


def _made(name: str) -> dict[str, Any] | None:
    """The config a short name ``tier/protocol-model`` stands for, or None."""
    tier, _, rest = name.removesuffix(".yaml").partition("/")
    protocol, _, model = rest.partition("-")
    if not model or tier not in tiers() or protocol not in PROTOCOLS:
        return None
    return {"include": [TIER_FILE], "name": rest, "protocol": protocol, "model": preset_of(model)}


def _source(name: str | Path) -> dict[str, Any]:
    """A config file (a path, or shipped under ``configs/``) or a made short name, includes merged."""
    path = Path(name)
    shipped = CONFIG_DIR / (str(name) if str(name).endswith(".yaml") else f"{name}.yaml")
    for candidate in (path, shipped):
        if candidate.is_file():
            raw = _read(candidate)
            if raw.get("name") is None:
                raw["name"] = candidate.stem
            return raw
    made = _made(str(name))
    if made is not None:
        tier_dir = CONFIG_DIR / str(name).partition("/")[0]
        return _include(made, tier_dir, ())
    raise InputError(f"{name}: no such config file or shipped config (shipped: {', '.join(list_configs())})")


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
    return _include(raw, path.parent, seen + (path,))


def _include(raw: dict[str, Any], folder: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """``raw`` over the files it includes (paths relative to ``folder``)."""
    raw = dict(raw)
    out: dict[str, Any] = {}
    for inc in raw.pop("include", None) or []:
        out = merge(out, _read(folder / inc, seen))
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
    """The full config: defaults, its protocol's record, then the file (with its includes) or
    the short name's tier file and model, then the model's recipe (training/recipes.py),
    then ``overrides``."""
    from .recipes import recipe_for

    raw = _source(name)
    base = DEFAULTS
    if raw.get("protocol") is not None:
        base = merge(DEFAULTS, get_protocol(raw["protocol"]).config())
    cfg = merge(base, raw)
    arch = _arch_of(cfg["model"])
    recipe = recipe_for(arch) if cfg["recipe"] is None else None  # a written config.yaml holds its own
    if recipe is not None:
        values = {k: v for k, v in recipe.items() if k != "source"}
        cfg = merge(cfg, values)
        cfg["recipe"] = {"arch": arch, "source": recipe["source"], "values": values}
    for item in overrides or []:
        apply_override(cfg, item)
    validate(cfg)
    return cfg


def _arch_of(model: Any) -> Any:
    """The architecture of a config's model name (the name itself if it is not known:
    validation says so)."""
    from ..errors import ArasfsrError
    from ..registry import resolve

    try:
        return resolve(model).arch if isinstance(model, str) else model
    except ArasfsrError:
        return model


def _range(value: Any, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or lo <= 0 or hi < lo:
        raise InputError(f"config {what}: expected a positive number or [min, max], got {value!r}")
    return lo, hi


def validate(cfg: dict[str, Any]) -> None:
    from ..errors import ModelError
    from ..registry import check_config

    try:
        check_config(*model_spec(cfg))
    except ModelError as exc:
        raise InputError(f"config model {cfg['model']!r}: {exc}") from None
    data, train, val = cfg["data"], cfg["train"], cfg["val"]
    _range(data["lr_size"], "data.lr_size")
    if (data["hr_size"] is None) == (data["scale"] is None):
        raise InputError("config data: give exactly one of hr_size and scale")
    _range(data["hr_size"], "data.hr_size")
    _range(data["scale"], "data.scale")
    for section, kind in (("data", data["degradation"]), ("val", val["degradation"])):
        if kind not in DEGRADATIONS:
            raise InputError(f"config {section}.degradation {kind!r}: choose from {', '.join(DEGRADATIONS)}")
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
    """(arch, kwargs) of the configured model: its config (a preset's, or a checkpoint's),
    then the sizes the architecture declares for the tier, then ``model_args``."""
    from ..registry import resolve, tier_sizes

    if not isinstance(cfg["model"], str):
        raise InputError(f"config model must be a model name, got {cfg['model']!r}")
    for key in ("model_args", "tier_model_args"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise InputError(f"config {key} must be a mapping, got {cfg[key]!r}")
    entry = resolve(cfg["model"])
    args = merge(entry.config, tier_sizes(entry.arch, cfg.get("tier")))
    tier_args = (cfg.get("tier_model_args") or {}).get(entry.arch) or {}
    if not isinstance(tier_args, dict):
        raise InputError(f"config tier_model_args.{entry.arch} must be a mapping, got {tier_args!r}")
    args = merge(args, tier_args)
    return entry.arch, merge(args, cfg.get("model_args") or {})
