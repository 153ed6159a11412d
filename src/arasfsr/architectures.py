"""The table of architectures, filled by the model files; configs from constructor signatures.

A model file declares its class with :func:`register_model`: the class joins
:data:`ARCHITECTURES` under its ``arch``, its presets (named configurations, timm-style)
join :data:`PRESETS`, and its network sizes per budget tier join :data:`TIERS`.

A model's config, the dictionary a checkpoint stores to rebuild it, is the JSON form of
its constructor's arguments with the defaults applied (:func:`record_config`): nothing
is listed by hand, so a new argument is recorded as soon as it is in the signature. The
arguments are checked against the annotations before the model is built
(:func:`bind_config`): unknown keys, types, and ranges (an ``int`` is a size, width or
count: at least 1, unless annotated ``Annotated[int, AtLeast(n)]``).

Pure Python: importing this module does not import torch.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, Union

from .errors import ModelError

# Larger sizes and counts are a damaged or hostile config, not a model.
MAX_SIZE = 1 << 16


@dataclass(frozen=True)
class Preset:
    """A named configuration of an architecture."""

    arch: str
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class AtLeast:
    """Lower bound of an ``int`` argument: ``Annotated[int, AtLeast(0)]``."""

    low: int


ARCHITECTURES: dict[str, type] = {}
PRESETS: dict[str, Preset] = {}
TIERS: dict[str, dict[str, dict[str, Any]]] = {}  # arch -> tier -> config overrides


def preset(description: str, **config: Any) -> Preset:
    """A preset for :func:`register_model` (its architecture is filled in there)."""
    return Preset("", config, description)


def register_model(presets: Mapping[str, Preset] | None = None,
                   tiers: Mapping[str, Mapping[str, Any]] | None = None) -> Callable[[type], type]:
    """Class decorator: register an architecture with its presets and tier sizes.

    Presets and tier sizes are checked against the constructor here, so a typo fails
    when the model file is imported.
    """

    def register(cls: type) -> type:
        arch = cls.__dict__.get("arch")
        if not arch:
            raise TypeError(f"{cls.__name__}: a registered model needs its own `arch` name")
        if ARCHITECTURES.get(arch, cls) is not cls:
            raise TypeError(f"architecture {arch!r} is registered twice")
        for name, p in (presets or {}).items():
            bind_config(cls.__init__, p.config, f"preset {name!r}")
        for tier, sizes in (tiers or {}).items():
            bind_config(cls.__init__, sizes, f"{arch} {tier} tier")
        ARCHITECTURES[arch] = cls
        PRESETS.update({name: replace(p, arch=arch) for name, p in (presets or {}).items()})
        TIERS[arch] = {tier: dict(sizes) for tier, sizes in (tiers or {}).items()}
        return cls

    return register


def record_config(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a model's ``__init__`` so that it checks its arguments and records them.

    Only the outermost constructor of an instance records (a subclass calling its
    parent's ``__init__`` keeps its own config). The constructor is called with the
    recorded (JSON) values, so a model rebuilt from its checkpoint gets exactly the
    arguments the original got.
    """
    params = inspect.signature(init).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise TypeError(f"{init.__qualname__}: name every argument (no *args/**kwargs); "
                        "the config is recorded from the signature")

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is not __init__:  # called from a subclass's constructor
            init(self, *args, **kwargs)
            return
        what = f"config of {getattr(type(self), 'arch', '') or type(self).__name__!r}"
        try:  # positional arguments by name; keywords are checked by bind_config
            given = dict(list(inspect.signature(init).bind_partial(self, *args).arguments.items())[1:])
        except TypeError as exc:
            raise ModelError(f"{what}: {exc}") from None
        if given.keys() & kwargs.keys():
            raise ModelError(f"{what}: {sorted(given.keys() & kwargs.keys())[0]!r} given twice")
        config = bind_config(init, {**given, **kwargs}, what)
        init(self, **config)
        self.config = config

    __init__.records_config = True  # type: ignore[attr-defined]
    return __init__


def bind_config(func: Callable[..., Any], config: Any, what: str) -> dict[str, Any]:
    """``config`` checked against ``func``'s signature, defaults applied, as JSON values."""
    if not isinstance(config, Mapping):
        raise ModelError(f"{what}: a config is a mapping of argument names, got {_show(config)}")
    params, hints = _signature(inspect.unwrap(func))
    unknown = [k for k in config if k not in params]
    if unknown:
        known = ", ".join(params) or "none"
        raise ModelError(f"{what}: unknown key {unknown[0]!r} (known: {known})")
    out: dict[str, Any] = {}
    for name, param in params.items():
        if name in config:
            check_value(config[name], hints.get(name, Any), f"{what}: {name}")
            out[name] = config[name]
        elif param.default is inspect.Parameter.empty:
            raise ModelError(f"{what}: missing key {name!r}")
        else:
            out[name] = param.default
    return to_json(out)


@functools.lru_cache(maxsize=None)
def _signature(func: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    params = {n: p for n, p in inspect.signature(func).parameters.items()
              if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return params, typing.get_type_hints(func, include_extras=True)


def check_value(value: Any, hint: Any, where: str, low: int = 1) -> None:
    """Raise ModelError unless ``value`` (JSON-like) fits the annotation ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if origin is Annotated:
        bounds = [m.low for m in hint.__metadata__ if isinstance(m, AtLeast)]
        check_value(value, args[0], where, bounds[0] if bounds else low)
        return
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                check_value(value, option, where, low)
                return
            except ModelError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ModelError(f"{where} must be {_describe(hint)}, got {_show(value)}")
    if origin is Literal:
        if not any(type(value) is type(a) and value == a for a in args):
            raise ModelError(f"{where} must be one of {', '.join(map(repr, args))}, got {_show(value)}")
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise ModelError(f"{where} must be true or false, got {_show(value)}")
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_SIZE:
            raise ModelError(f"{where} must be an integer from {low} to {MAX_SIZE}, got {_show(value)}")
    elif hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ModelError(f"{where} must be a finite number, got {_show(value)}")
    elif hint is str:
        if not isinstance(value, str):
            raise ModelError(f"{where} must be a string, got {_show(value)}")
    elif (origin or hint) in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)) or not value:
            raise ModelError(f"{where} must be a non-empty list, got {_show(value)}")
        item = args[0] if args else Any
        for i, v in enumerate(value):
            check_value(v, item, f"{where}[{i}]", low)
    elif (origin or hint) in (dict, Mapping):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ModelError(f"{where} must be a mapping with string keys, got {_show(value)}")
        item = args[1] if len(args) == 2 else Any
        for k, v in value.items():
            check_value(v, item, f"{where}.{k}", low)
    else:
        raise TypeError(f"{where}: annotation {hint!r} cannot be checked; use int, float, bool, str, "
                        "Literal, lists, mappings or Optional of these")


def to_json(value: Any) -> Any:
    """The JSON form of a config: mappings become dicts, sequences lists (fresh copies)."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a model config holds JSON values only, got {type(value).__name__}")


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    names = [getattr(typing.get_origin(a) or a, "__name__", str(a)) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
