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
import math
import re
from pathlib import Path
from typing import Any

import yaml

from ..data.degrade import DEGRADATIONS, REALISTIC, RESIZE_METHODS
from ..errors import InputError
from ..imageio import one_line
from ..protocols import PROTOCOLS, get_protocol

LOSS_KINDS = ("charbonnier", "l1", "mse")  # train.loss: pixel losses of training/module.py

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
        "degradation": "bicubic",  # bicubic | nn-jpeg | mixture | realistic
        "realistic": copy.deepcopy(REALISTIC),  # the realistic chain's ranges (data/degrade.py)
        "sample_q": 2304,          # HR pixels queried per sample (null: all); LIIF's DIV2K
                                   # value (48^2 patches); its CelebA-HQ configs use 1024
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
        "checkpoint_every_s": None,  # a checkpoint every this many seconds of training instead
        "precision": "auto",       # auto: bf16-mixed on CUDA and on CPUs that multiply bf16 natively, else 32-true
        "log_every": 10,
        "keep_checkpoints": "latest",  # latest | all
        "loss": "charbonnier",     # charbonnier | l1 | mse
        "flat_weight": 0.0,        # queries where the input is flat weigh 1 + this (against invented blotches)
        "betas": [0.9, 0.999],     # Adam's
        "fused_adam": False,       # Adam as one fused kernel (same maths)
        "warmup": 0,               # steps of linear learning-rate warm-up
        "lr_schedule": "step",     # step: x lr_gamma at lr_decay_at | cosine: from lr_decay_at down to lr x lr_gamma
        "ema_decay": 0.999,        # EMA of the weights (exported and validated); null: none
        "compile": False,          # torch.compile the forward + loss: true or a mode ("reduce-overhead": CUDA graphs)
        "channels_last": False,    # NHWC convolutions (tensor cores prefer them)
        "query": "projected",      # projected: first layer once per LR position, rows gathered | gathered: LIIF's (same maths)
        "time_budget_s": None,     # stop by this wall time, the schedule fitted to the steps that fit
        "profile": False,          # time data wait / forward / backward / optimiser per step (syncs the device)
    },
    "recipe": None,                # filled from training/recipes.py: the model's authors' recipe, if any
}


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, but ``1e-4`` is a number (YAML 1.1 wants ``1.0e-4``), as users expect."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
                              list("-+.0123456789"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader


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
        if _is_file(candidate):
            raw = _read(candidate)
            if raw.get("name") is None:
                raw["name"] = candidate.stem
            return raw
    made = _made(str(name))
    if made is not None:
        tier_dir = CONFIG_DIR / str(name).partition("/")[0]
        return _include(made, tier_dir, ())
    raise InputError(f"{name}: no such config file or shipped config (shipped: {', '.join(list_configs())})")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL byte: no such file
        return False


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
        raw = _yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a config: a config is a YAML text file") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read config ({one_line(exc)})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a config must be a mapping")
    return _include(raw, path.parent, seen + (path,))


def _include(raw: dict[str, Any], folder: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """``raw`` over the files it includes (paths relative to ``folder``)."""
    raw = dict(raw)
    out: dict[str, Any] = {}
    includes = raw.pop("include", None) or []
    if not (isinstance(includes, list) and all(isinstance(i, str) for i in includes)):
        raise InputError(f"config include must be a list of file names, got {includes!r}")
    for inc in includes:
        out = merge(out, _read(folder / inc, seen))
    return merge(out, raw)


def apply_override(cfg: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``train.iterations=20000``: a dotted key and a YAML value."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise InputError(f"--set {assignment!r}: use KEY=VALUE, e.g. train.iterations=20000")
    try:
        value = _yaml(text) if text else None
    except yaml.YAMLError as exc:
        raise InputError(f"--set {assignment!r}: the value is not valid YAML ({one_line(exc)})") from None
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            if part not in node:
                raise InputError(f"--set {key}: unknown key {part!r}")
            raise InputError(f"--set {key}: {part!r} is not a section")
        node = node[part]
    if parts[-1] not in node and parts[0] not in ("model_args", "tier_model_args"):
        raise InputError(f"--set {key}: unknown key (known here: {', '.join(sorted(map(str, node)))})")
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
        _choice(raw["protocol"], "protocol", PROTOCOLS)
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


# Upper bounds that keep a typo from hanging or exhausting the machine (a face side, a batch).
MAX_SIDE = 8192
MAX_SCALE = 64
MAX_COUNT = 2**31 - 1
MAX_BATCH = 65536
MAX_WORKERS = 256
MAX_SEED = 2**63 - 1
# Lightning precisions (the strings its Trainer takes), and auto: bf16-mixed on CUDA, 32-true on CPU.
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
              "64-true", "64")
KEEP_CHECKPOINTS = ("latest", "all")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def _is_whole(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_real(value: Any, lo: float, hi: float, above: bool = True) -> bool:
    """A finite number in (lo, hi] (``above``) or [lo, hi]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > lo if above else value >= lo) and value <= hi)


def _whole(value: Any, what: str, lo: int = 1, hi: int = MAX_COUNT, none: bool = False) -> None:
    if not (_is_whole(value, lo, hi) or (none and value is None)):
        raise InputError(f"config {what} must be a whole number from {lo} to {hi:,}"
                         f"{' or null' if none else ''}, got {value!r}")


def _real(value: Any, what: str, lo: float, hi: float = math.inf, above: bool = True) -> None:
    if not _is_real(value, lo, hi, above):
        bound = f"{'above' if above else 'at least'} {lo:g}" + (f" and at most {hi:g}" if hi < math.inf else "")
        raise InputError(f"config {what} must be a finite number {bound}, got {value!r}")


def _choice(value: Any, what: str, choices: Any) -> None:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"config {what} {value!r}: choose from {', '.join(choices)}")


def _text(value: Any, what: str, none: bool = False) -> None:
    if not (isinstance(value, str) and value) and not (none and value is None):
        raise InputError(f"config {what} must be a name{' or null' if none else ''}, got {value!r}")


def _span(value: Any, what: str, whole: bool = True, none: bool = False) -> None:
    """A size ``n`` or a range ``[min, max]`` of sizes; not ``whole``: a range of scale factors."""
    if value is None and none:
        return
    pair = value if isinstance(value, list) and len(value) == 2 else [value, value] if whole else None
    fits = pair is not None and all(_is_whole(v, 1, MAX_SIDE) if whole else _is_real(v, 0, MAX_SCALE) for v in pair)
    if not (fits and pair[0] <= pair[1]):
        kind = (f"whole number from 1 to {MAX_SIDE} or [min, max] of them" if whole
                else f"[min, max] of numbers above 0 and at most {MAX_SCALE}")
        raise InputError(f"config {what} must be a {kind}{' or null' if none else ''}, got {value!r}")


def _is_range(value: Any, hi: float = math.inf) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(_is_real(v, 0, hi) for v in value)
            and value[0] <= value[1])


def _section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """``cfg[name]``, a mapping holding only the keys the defaults know."""
    section = cfg[name]
    known = ", ".join(DEFAULTS[name])
    if not isinstance(section, dict):
        raise InputError(f"config {name} must be a section of settings ({known}), got {section!r}")
    unknown = sorted(str(k) for k in section if k not in DEFAULTS[name])
    if unknown:
        raise InputError(f"config {name}: unknown setting {', '.join(map(repr, unknown))} (known: {known})")
    return section


# The realistic chain's ranges: [low, high] bounds of each setting that is a range.
REALISTIC_BOUNDS = {"blur_sigma": (0, 10), "blur2_sigma": (0, 10), "gaussian_sigma": (0, 255),
                    "poisson_scale": (0, 10), "jpeg_quality": (1, 100), "second_scale": (0.25, 4)}


def _realistic(section: Any) -> None:
    """``data.realistic``: every key of :data:`REALISTIC`, each probability in [0, 1], each
    range a ``[min, max]`` within its bounds, ``resize`` a non-empty list of methods."""
    what = "config data.realistic"
    if not isinstance(section, dict):
        raise InputError(f"{what} must be a section of settings ({', '.join(REALISTIC)}), got {section!r}")
    unknown = sorted(str(k) for k in section if k not in REALISTIC)
    missing = [k for k in REALISTIC if k not in section]
    if unknown or missing:
        raise InputError(f"{what}: unknown setting {', '.join(map(repr, unknown))} (known: {', '.join(REALISTIC)})"
                         if unknown else f"{what}: missing {', '.join(missing)}")
    for key, value in section.items():
        if key.endswith("_prob"):
            _real(value, f"data.realistic.{key}", 0, 1, above=False)
        elif key == "resize":
            if not (isinstance(value, list) and value and all(isinstance(v, str) and v in RESIZE_METHODS
                                                               for v in value)):
                raise InputError(f"{what}.resize must be a non-empty list of {', '.join(RESIZE_METHODS)}, got {value!r}")
        else:
            lo, hi = REALISTIC_BOUNDS[key]
            whole = key == "jpeg_quality"
            fits = (isinstance(value, list) and len(value) == 2 and value[0] <= value[1]
                    and all(_is_whole(v, lo, hi) if whole else _is_real(v, lo, hi, above=lo == 0) for v in value))
            if not fits:
                kind = "whole numbers" if whole else "numbers"
                raise InputError(f"{what}.{key} must be [min, max] of {kind} from {lo:g} to {hi:g}"
                                 f"{' (above 0)' if lo == 0 and not whole else ''}, got {value!r}")


def validate(cfg: dict[str, Any]) -> None:
    """Refuse any config value of the wrong type or out of range, before anything is built or written."""
    from ..errors import ModelError
    from ..registry import check_config

    unknown = sorted(str(k) for k in cfg if k not in DEFAULTS)
    if unknown:
        raise InputError(f"config: unknown section {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(DEFAULTS)})")
    data, train, val = (_section(cfg, name) for name in ("data", "train", "val"))
    _text(cfg["name"], "name")
    _text(cfg["tier"], "tier", none=True)
    if cfg["protocol"] is not None:
        _choice(cfg["protocol"], "protocol", PROTOCOLS)
    _text(cfg["model"], "model")

    _text(data["root"], "data.root", none=True)
    _text(data["train"], "data.train")
    _text(data["val"], "data.val")
    _whole(data["limit"], "data.limit", none=True)
    _span(data["lr_size"], "data.lr_size")
    if (data["hr_size"] is None) == (data["scale"] is None):
        raise InputError("config data: give exactly one of hr_size and scale")
    _span(data["hr_size"], "data.hr_size", none=True)
    _span(data["scale"], "data.scale", whole=False, none=True)
    _whole(data["max_hr"], "data.max_hr", 1, MAX_SIDE, none=True)
    _whole(data["sample_q"], "data.sample_q", none=True)
    if not isinstance(data["flip"], bool):
        raise InputError(f"config data.flip must be true or false, got {data['flip']!r}")
    _whole(data["num_workers"], "data.num_workers", 0, MAX_WORKERS)
    for section, kind in (("data", data["degradation"]), ("val", val["degradation"])):
        _choice(kind, f"{section}.degradation", DEGRADATIONS)
    _realistic(data["realistic"])

    _whole(val["lr_size"], "val.lr_size", 1, MAX_SIDE)
    _whole(val["hr_size"], "val.hr_size", 1, MAX_SIDE)
    _whole(val["count"], "val.count")
    _whole(val["batch_size"], "val.batch_size", 1, MAX_BATCH)

    for key in ("iterations", "val_every", "log_every"):
        _whole(train[key], f"train.{key}")
    _whole(train["batch_size"], "train.batch_size", 1, MAX_BATCH)
    _whole(train["seed"], "train.seed", 0, MAX_SEED)
    _real(train["lr"], "train.lr", 0)
    _real(train["lr_decay_at"], "train.lr_decay_at", 0, 1, above=False)
    _real(train["lr_gamma"], "train.lr_gamma", 0)
    _real(train["charbonnier_delta"], "train.charbonnier_delta", 0)
    _real(train["kl_weight"], "train.kl_weight", 0, above=False)
    _real(train["flat_weight"], "train.flat_weight", 0, above=False)
    _choice(train["precision"], "train.precision", PRECISIONS)
    _choice(train["keep_checkpoints"], "train.keep_checkpoints", KEEP_CHECKPOINTS)
    _choice(data["pipeline"], "data.pipeline", ("workers", "device"))
    crop = data["crop_aug"]
    if crop is not None and not (isinstance(crop, dict) and set(crop) == {"scale", "ratio"}
                                 and _is_range(crop["scale"], 1) and _is_range(crop["ratio"])):
        raise InputError(f"config data.crop_aug must be null or {{scale: [lo, hi], ratio: [lo, hi]}} with "
                         f"0 < scale <= 1 and ratio > 0, got {crop!r}")
    _choice(train["loss"], "train.loss", LOSS_KINDS)
    _choice(train["lr_schedule"], "train.lr_schedule", ("step", "cosine"))
    _choice(train["query"], "train.query", ("projected", "gathered"))
    betas = train["betas"]
    if not (isinstance(betas, list) and len(betas) == 2 and all(_is_real(b, 0, 1, above=False) and b < 1
                                                                 for b in betas)):
        raise InputError(f"config train.betas must be [beta1, beta2], each at least 0 and below 1, got {betas!r}")
    _whole(train["warmup"], "train.warmup", 0)
    if train["ema_decay"] is not None and not (_is_real(train["ema_decay"], 0, 1) and train["ema_decay"] < 1):
        raise InputError(f"config train.ema_decay must be in (0, 1) or null, got {train['ema_decay']!r}")
    for key in ("time_budget_s", "checkpoint_every_s"):
        if train[key] is not None:
            _real(train[key], f"train.{key}", 0)
    for key in ("fused_adam", "channels_last", "profile"):
        if not isinstance(train[key], bool):
            raise InputError(f"config train.{key} must be true or false, got {train[key]!r}")
    if not isinstance(train["compile"], bool):
        _choice(train["compile"], "train.compile", COMPILE_MODES)
    if cfg["recipe"] is not None and not isinstance(cfg["recipe"], dict):
        raise InputError(f"config recipe must be null or a mapping, got {cfg['recipe']!r}")
    try:
        check_config(*model_spec(cfg))
    except ModelError as exc:
        raise InputError(f"config model {cfg['model']!r}: {exc}") from None


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
