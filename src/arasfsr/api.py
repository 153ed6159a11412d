"""The Python API: ``load_model(name_or_path).upscale(image, scale=... | size=...)``.

Sizes are (width, height) wherever they are called ``size``, as in Pillow; only the
tensor-level :meth:`Upscaler.render` takes ``size_hw`` = (height, width), as torch does.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_checkpoint
from .defaults import DEFAULT_MAX_PIXELS, DEFAULT_MODEL
from .errors import DeviceError, InputError, ModelError, SettingError
from .imageio import carry_metadata, fill_transparent, normalise_mode, resize_alpha, split_alpha
from .models import SuperResolver, create_model
from .models.bicubic import bicubic_resize
from .models.frequency import latent_draw
from .registry import resolve
from .runtime import (RenderSettings, beyond_model_detail, check_device, check_max_pixels, check_sampling,
                      configure_threads, face_size_warning, is_downscale, large_input_note, render_progress,
                      resolve_precision, thread_policy)
from .uncertainty import GradientHead, head_for, uncertainty_map

__all__ = ["DEFAULT_MAX_PIXELS", "OnnxUpscaler", "RenderSettings", "Upscaler", "check_sampling", "load_model",
           "output_size"]

ImageLike = Union[Image.Image, np.ndarray]
Scale = Union[float, tuple[float, float]]


def output_size(in_wh: tuple[int, int], scale: Scale | None = None,
                size: tuple[int, int] | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the output for a ``scale`` (s, or (sx, sy) width first) or a
    ``size`` (w, h)."""
    if (scale is None) == (size is None):
        raise InputError("give exactly one of scale or size")
    max_pixels = check_max_pixels(max_pixels)
    w, h = in_wh
    if size is not None:
        out_w, out_h = _whole_pair(size)
    else:
        sx, sy = _factors(scale)
        if not (math.isfinite(w * sx) and math.isfinite(h * sy)):
            raise InputError(f"scale {scale} is too large: the output size is not a finite number")
        out_w, out_h = round(w * sx), round(h * sy)
    if out_w < 1 or out_h < 1:
        raise InputError(f"output size {out_w}x{out_h} is empty; each side must be at least 1 pixel")
    if max_pixels is not None and out_w * out_h > max_pixels:
        raise InputError(f"output {out_w}x{out_h} has {out_w * out_h:,} pixels, above the limit of "
                         f"{max_pixels:,}; raise it with max_pixels (--max-pixels)")
    return out_w, out_h


def _pair(value: object) -> tuple | None:
    """``value`` as a 2-tuple if it is a pair (tuple, list or 1-D array of 2), else None."""
    if isinstance(value, (tuple, list)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return tuple(value) if len(value) == 2 else None
    return None


def _is_number(value: object, kind: type = numbers.Real) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _factors(scale: object) -> tuple[float, float]:
    """(sx, sy) of a scale given as one number or a pair, refused unless positive and finite."""
    pair = _pair(scale)
    if pair is None and _is_number(scale):
        pair = (scale, scale)
    if pair is None or not all(_is_number(v) for v in pair):
        raise InputError(f"scale must be a number or a pair of numbers (sx, sy), got {scale!r}")
    sx, sy = (float(v) for v in pair)
    if not all(math.isfinite(v) and v > 0 for v in (sx, sy)):
        raise InputError(f"scale must be positive and finite, got {scale}")
    return sx, sy


def _whole_pair(size: object) -> tuple[int, int]:
    """(w, h) of a size given as two whole numbers; a float such as 10.7 is refused, not cut."""
    pair = _pair(size)
    if pair is None or not all(_is_number(v, numbers.Integral) for v in pair):
        raise InputError(f"size must be two whole numbers (width, height), got {size!r}")
    return int(pair[0]), int(pair[1])


def images_to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float32 in [0,1] on ``device`` (a copy)."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).to(device).permute(0, 3, 1, 2).float() / 255


def tensor_to_images(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [0,1] -> (B,H,W,3) uint8 on the CPU, rounded to the nearest level."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()



@dataclass
class _Prepared:
    mode: str  # the colour's: L or RGB
    rgb: np.ndarray  # (h, w, 3) uint8, what the model sees
    alpha: Image.Image | None
    out_size: tuple[int, int]  # (w, h)


Progress = Callable[[int], None]
_UNSET: Any = object()  # a per-call keyword not given


class Upscaler:
    """A model ready for inference on one device, with its render settings.

    The settings (:class:`~arasfsr.runtime.RenderSettings`: precision, chunk size, pixel
    limit, z sampling, batch size, force_model) are given once, here or to
    :func:`load_model`, and checked once; :meth:`with_settings` gives an Upscaler with
    other settings that shares the model. No call changes the model or the settings,
    so one Upscaler may serve several threads. The per-call keywords of earlier versions
    (``chunk_size=``, ``max_pixels=``, ``sample_z=``, ``seed=``) still work and go through
    the same checks.
    """

    def __init__(self, model: SuperResolver, name: str, device: str | torch.device = "cpu",
                 precision: str = "auto", *, settings: RenderSettings | None = None, **changes: Any) -> None:
        self.device = check_device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.learned = getattr(model, "needs_weights", True)
        self._warned_sizes: set[tuple[int, int]] = set()
        self._apply(settings or RenderSettings(precision=precision), changes)
        configure_threads()
        self._threads = thread_policy()

    def _apply(self, base: RenderSettings, changes: dict[str, Any]) -> None:
        self.settings = base.replace(**changes) if changes else base.checked()
        # Reduced precision for the implicit decoder where the hardware has it (docs/performance.md).
        self.precision = resolve_precision(self.settings.precision, self.device)
        self._check_sampling(self.settings)

    def _check_sampling(self, settings: RenderSettings) -> None:
        if settings.sample_z and getattr(self.model, "frequency", None) is None:
            raise SettingError(f"sampling z needs a model with the frequency module (ARASFSR); "
                               f"{self.name} has no latent z")

    def with_settings(self, **changes: Any) -> Upscaler:
        """This model with some settings changed (checked); the model itself is shared."""
        other = copy.copy(self)
        other._warned_sizes = set(self._warned_sizes)
        other._apply(self.settings, changes)
        return other

    def _settings_for(self, changes: dict[str, Any]) -> RenderSettings:
        """The settings of one call: this Upscaler's, or with the caller's keywords."""
        changes = {k: v for k, v in changes.items() if v is not _UNSET}
        if not changes:
            return self.settings
        if "precision" in changes:
            raise SettingError("precision is set once, on the Upscaler (load_model(..., precision=...) "
                               "or with_settings(precision=...))")
        settings = self.settings.replace(**changes)
        self._check_sampling(settings)
        return settings

    def render(self, lr: torch.Tensor, size_hw: tuple[int, int], chunk_size: int | None = None, *,
               sample_z: bool | None = None, seed: int | None = None) -> torch.Tensor:
        """(B,3,h,w) in [0,1] -> (B,3,H,W) at ``size_hw = (H, W)`` (torch's order).

        An output smaller than the input (not larger on either axis) is the input resized
        by anti-aliased bicubic, without the network: on faces it scored higher than the
        network on the input shrunk to the output size (docs/performance.md, "Memory and
        large inputs"), and the network on the full input costs time and memory for nothing.
        So is, for a learned model, an input larger than the model adds detail to
        (:data:`~arasfsr.runtime.MODEL_DETAIL_SIDE`; one line on stderr, and ``force_model``
        runs the model). A face far outside the sizes the model was trained on gets one line
        on stderr (once per input size).

        ``chunk_size``, ``sample_z``, ``seed``: this call's, else the settings'.
        """
        settings = self._settings_for({"chunk_size": _UNSET if chunk_size is None else chunk_size,
                                       "sample_z": _UNSET if sample_z is None else sample_z,
                                       "seed": _UNSET if seed is None else seed})
        in_hw = tuple(lr.shape[-2:])
        size_hw = (int(size_hw[0]), int(size_hw[1]))
        if is_downscale(in_hw, size_hw):
            return bicubic_resize(lr, size_hw)
        if self.learned and not settings.force_model and beyond_model_detail(*in_hw):
            self._say_once(in_hw, large_input_note(*in_hw, self.name))
            return bicubic_resize(lr, size_hw)
        if self.learned:
            self._say_once(in_hw, face_size_warning(*in_hw, self.name))
        with latent_draw(settings.sample_z, settings.seed), self._threads.rendering():
            return self.network(lr, size_hw, settings.chunk_size)

    def _say_once(self, in_hw: tuple[int, int], message: str | None) -> None:
        if message and in_hw not in self._warned_sizes:
            print(message, file=sys.stderr)
            self._warned_sizes.add(in_hw)

    def network(self, lr: torch.Tensor, size_hw: tuple[int, int], chunk_size: int | None = None) -> torch.Tensor:
        """The model itself, (B,3,h,w) in [0,1] -> (B,3,H,W); the ONNX engine overrides this."""
        return self.model.render(lr, size_hw, chunk_size=chunk_size, precision=self.precision)

    @torch.inference_mode()
    def upscale(self, image: ImageLike, *, scale: Scale | None = None, size: tuple[int, int] | None = None,
                uncertainty: bool = False, progress: Progress | None = None,
                **settings: Any) -> ImageLike | tuple[ImageLike, np.ndarray]:
        """Super-resolve one image to ``scale`` x its size or to ``size = (width, height)``;
        ``scale`` is one factor or ``(sx, sy)``, width first like ``size``.

        ``uncertainty=True`` returns ``(image, map)``: the map is float32 (H, W), the
        output's size, the expected |output - truth| per pixel in grey levels (0-255, RGB
        mean) from :mod:`arasfsr.uncertainty`; deterministic, a few ms.

        Takes a PIL image or a uint8 array (HxW grayscale, HxWx3 RGB, HxWx4 RGBA) and returns
        the same kind: grayscale stays grayscale (super-resolved on its luminance), alpha is
        kept (resized apart from the colour), RGB stays RGB. A PIL image comes back as L,
        LA, RGB or RGBA with the ICC profile and EXIF of ``image.info``.

        ``progress(pixels)`` is called as output pixels are done (a large output takes
        minutes). ``settings``: this call's render settings (``chunk_size``, ``max_pixels``,
        ``sample_z``, ``seed``...), else the Upscaler's.
        """
        if isinstance(image, (list, tuple)):
            raise InputError("upscale takes one image; for several use upscale_many")
        return self.upscale_many([image], scale=scale, size=size, uncertainty=uncertainty, progress=progress,
                                 **settings)[0]

    @torch.inference_mode()
    def upscale_many(self, images: Iterable[ImageLike], *, scale: Scale | None = None,
                     size: tuple[int, int] | None = None, uncertainty: bool = False,
                     progress: Progress | None = None,
                     **settings: Any) -> list[ImageLike] | list[tuple[ImageLike, np.ndarray]]:
        """:meth:`upscale` of each image (a list, a generator, any iterable), the images
        that share their input and output sizes rendered together, at most ``batch_size``
        (a setting; None: all of them) per forward pass; ``uncertainty=True``: ``(image,
        map)`` pairs, as :meth:`upscale` gives.

        The results are those of :meth:`upscale` one by one (the model treats each image of
        a batch on its own; a seeded z draw too); a batch only saves the per-pass overheads.
        """
        if isinstance(images, (np.ndarray, Image.Image)) or not isinstance(images, Iterable):
            raise InputError(f"upscale_many takes a list (or another iterable) of images, got "
                             f"{type(images).__name__}; for one image use upscale")
        run = self._settings_for(settings)
        images = list(images)
        prepared = [self._prepare(image, scale, size, run.max_pixels) for image in images]
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault((p.rgb.shape, p.out_size), []).append(i)
        results: list[ImageLike | None] = [None] * len(prepared)
        for (_, (out_w, out_h)), members in groups.items():
            step = run.batch_size or len(members)
            for start in range(0, len(members), step):
                part = members[start:start + step]
                lr = images_to_tensor(np.stack([prepared[i].rgb for i in part]), self.device)
                with render_progress(progress):
                    sr = self.render(lr, (out_h, out_w), run.chunk_size, sample_z=run.sample_z, seed=run.seed)
                for i, one in zip(part, sr):
                    results[i] = self._finish(images[i], prepared[i], one[None],
                                                 head_for(self.name) if uncertainty else None)
        return results

    def _prepare(self, image: ImageLike, scale: Scale | None, size: tuple[int, int] | None,
                 max_pixels: int | None) -> _Prepared:
        """The checked input of one image: its colour as RGB for the model, alpha apart."""
        if isinstance(image, np.ndarray):
            mode = {(2,): "L", (3, 3): "RGB", (3, 4): "RGBA"}.get((image.ndim, *image.shape[2:]))
            if mode is None:
                raise InputError(f"array input must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
            check_uint8(image)
            if 0 in image.shape:
                raise InputError("input image is empty")
            pil = Image.fromarray(image)  # L, RGB or RGBA from the shape
        elif isinstance(image, Image.Image):
            pil, _ = normalise_mode(image)
        else:
            raise InputError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
        if pil.width < 1 or pil.height < 1:
            raise InputError("input image is empty")
        out_size = output_size(pil.size, scale, size, max_pixels)
        colour, alpha = split_alpha(pil)
        rgb = np.asarray(colour.convert("RGB"))
        if alpha is not None:
            rgb = fill_transparent(rgb, np.asarray(alpha))
        return _Prepared(colour.mode, rgb, alpha, out_size)

    @staticmethod
    def _finish(image: ImageLike, prepared: _Prepared, sr: torch.Tensor,
                head: GradientHead | None = None) -> ImageLike | tuple[ImageLike, np.ndarray]:
        """The model's (1,3,H,W) output as the kind of image ``image`` is (and its map by
        ``head``, if given)."""
        rgb = prepared.rgb
        # One luminance for a grayscale input: the model's three channels differ by a few levels.
        gray = prepared.mode == "L" or bool((rgb[..., :1] == rgb[..., 1:]).all())
        if gray:
            sr = sr.mean(1, keepdim=True).expand_as(sr)
        out = Image.fromarray(tensor_to_images(sr)[0]).convert(prepared.mode)
        if prepared.alpha is not None:
            out.putalpha(resize_alpha(prepared.alpha, prepared.out_size))
        result = np.asarray(out) if isinstance(image, np.ndarray) else carry_metadata(image, out)
        if not head:
            return result
        return result, uncertainty_map(images_to_tensor(rgb[None], sr.device), sr, head)[0].cpu().numpy()

    @torch.inference_mode()
    def upscale_batch(self, images: np.ndarray, size_hw: tuple[int, int] | None = None,
                      chunk_size: int | None = None, *, size: tuple[int, int] | None = None,
                      scale: Scale | None = None, progress: Progress | None = None, **settings: Any) -> np.ndarray:
        """(B,h,w,3) uint8 -> (B,H,W,3) uint8 at ``size = (W, H)`` or ``scale``, the whole batch
        in one forward pass (what evaluation uses); the pixel limit applies as in upscale.

        ``size_hw = (H, W)`` (the second positional argument) is the older spelling; it
        still works, with a DeprecationWarning. ``settings``: as in :meth:`upscale`.
        """
        if size_hw is not None:
            if size is not None or scale is not None:
                raise InputError("give one of size (W, H), scale, or the older size_hw (H, W)")
            warnings.warn("upscale_batch(images, (H, W)) is deprecated: pass size=(W, H), as everywhere else",
                          DeprecationWarning, stacklevel=3)
            pair = _pair(size_hw)
            size = (pair[1], pair[0]) if pair is not None else size_hw
        if chunk_size is not None:
            settings["chunk_size"] = chunk_size
        run = self._settings_for(settings)
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
            shape = getattr(images, "shape", type(images).__name__)
            raise InputError(f"upscale_batch takes a (B, H, W, 3) uint8 array, got {shape}; "
                             "for grayscale, RGBA or images of several sizes use upscale_many")
        check_uint8(images)
        if 0 in images.shape:
            raise InputError(f"upscale_batch: the batch is empty ({images.shape})")
        out_w, out_h = output_size((images.shape[2], images.shape[1]), scale, size, run.max_pixels)
        with render_progress(progress):
            sr = self.render(images_to_tensor(images, self.device), (out_h, out_w), run.chunk_size,
                             sample_z=run.sample_z, seed=run.seed)
        return tensor_to_images(sr)


def check_uint8(images: np.ndarray) -> None:
    """Refuse an array that is not uint8, saying how to convert it: other integer types
    would wrap around 256, and floats in 0..1 would come out near-black if cast."""
    if images.dtype == np.uint8:
        return
    if np.issubdtype(images.dtype, np.floating):
        hint = "for values in 0..1 pass (x * 255).round().astype(np.uint8)"
    elif images.dtype == np.uint16:
        hint = "for 16-bit values pass (x / 257).round().astype(np.uint8)"
    else:
        hint = "convert it to 0..255 uint8 first"
    raise InputError(f"arrays must be uint8 (0-255), got {images.dtype}; {hint}, or pass a PIL image")


class OnnxUpscaler(Upscaler):
    """The same ``upscale`` run by onnxruntime on a model exported by ``arasfsr export``."""

    def __init__(self, model_or_path, name: str, **changes: Any) -> None:
        from .onnx_engine import OnnxEngine

        self.engine = OnnxEngine(model_or_path)
        self.device = torch.device("cpu")
        self.model = None
        self.name = name
        self.learned = True
        self._warned_sizes = set()
        self._apply(RenderSettings(precision="fp32"), changes)
        configure_threads()
        self._threads = thread_policy()

    def _check_sampling(self, settings: RenderSettings) -> None:
        if settings.sample_z:
            raise SettingError("an exported ONNX model computes z's mean; sample z with the torch engine")

    def network(self, lr: torch.Tensor, size_hw: tuple[int, int], chunk_size: int | None = None) -> torch.Tensor:
        return self.engine.render(lr, size_hw, chunk_size)


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu",
               pretrained: bool = True, precision: str = "auto", engine: str = "torch", **settings: Any) -> Upscaler:
    """A named model (see ``arasfsr models``) or a ``.safetensors`` checkpoint path.

    The name is resolved by :func:`arasfsr.registry.resolve`. ``pretrained=False``
    builds the named architecture and config with random weights (for training).
    ``device``: cpu, cuda (cuda:N) or mps where present. ``precision`` ("auto", "fp32",
    "bf16") is the implicit decoder's; ``engine="onnx"`` runs the model with onnxruntime
    (an ``.onnx`` file from ``arasfsr export``, or a model exported on the fly).
    ``settings``: the other render settings (:class:`~arasfsr.runtime.RenderSettings`:
    ``chunk_size``, ``max_pixels``, ``sample_z``, ``seed``, ``batch_size``,
    ``force_model``). All of it is checked before the model is built.
    """
    if engine not in ("torch", "onnx"):
        raise ModelError(f"unknown engine {engine!r}; use torch or onnx")
    RenderSettings(precision=precision, **settings).checked()
    device = check_device(device)
    if engine == "onnx":
        if device.type != "cpu":
            raise DeviceError("the onnx engine runs on the CPU; use device cpu")
        if str(name_or_path).endswith(".onnx"):
            return OnnxUpscaler(Path(name_or_path), Path(name_or_path).stem, **settings)
        from .onnx_engine import export_onnx

        up = load_model(name_or_path, "cpu", pretrained, "fp32")
        return OnnxUpscaler(export_onnx(up.model), up.name, **settings)
    entry = resolve(name_or_path, trained=pretrained)
    if pretrained and entry.weights is not None:
        model = load_checkpoint(entry.weights)
    else:
        model = create_model(entry.arch, **entry.config)
    return Upscaler(model, entry.name, device, precision, **settings)
