"""The Python API: ``load_model(name_or_path).upscale(image, scale=... | size=...)``."""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_checkpoint
from .defaults import DEFAULT_MAX_PIXELS, DEFAULT_MODEL
from .errors import InputError, ModelError
from .imageio import carry_metadata, fill_transparent, normalise_mode, resize_alpha, split_alpha
from .models import SuperResolver, create_model
from .models.bicubic import bicubic_resize
from .registry import resolve
from .runtime import check_chunk_size, configure_threads, face_size_warning, is_downscale, resolve_precision
from .uncertainty import uncertainty_map

ImageLike = Union[Image.Image, np.ndarray]
Scale = Union[float, tuple[float, float]]


def output_size(in_wh: tuple[int, int], scale: Scale | None = None,
                size: tuple[int, int] | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the output for a ``scale`` (s, or (sx, sy) width first) or a
    ``size`` (w, h)."""
    if (scale is None) == (size is None):
        raise InputError("give exactly one of scale or size")
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


class Upscaler:
    """A model ready for inference on one device."""

    def __init__(self, model: SuperResolver, name: str, device: str | torch.device = "cpu",
                 precision: str = "auto") -> None:
        self.device = torch.device(device)
        configure_threads()
        # Reduced precision for the implicit decoder where the hardware has it (docs/performance.md).
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.learned = getattr(model, "needs_weights", True)
        self._warned_sizes: set[tuple[int, int]] = set()

    def render(self, lr: torch.Tensor, size: tuple[int, int], chunk_size: int | None = None, *,
               sample_z: bool = False, seed: int | None = None) -> torch.Tensor:
        """(B,3,h,w) in [0,1] -> (B,3,H,W).

        An output smaller than the input (not larger on either axis) is the input resized
        by anti-aliased bicubic, without the network: on faces it scored higher than the
        network on the input shrunk to the output size (docs/performance.md, "Memory and
        large inputs"), and the network on the full input costs time and memory for nothing.
        A face far outside the sizes the model was trained on gets one line on stderr (once
        per input size).

        ``sample_z`` draws ARASFSR's frequency latent z instead of using its mean, as the
        authors' code does at inference; from ``seed`` if given (reproducible, and each
        image's draw independent of its batch), else from torch's global generator.
        """
        seed = check_sampling(sample_z, seed)
        in_hw = tuple(lr.shape[-2:])
        if is_downscale(in_hw, size):
            return bicubic_resize(lr, size)
        if self.learned and in_hw not in self._warned_sizes:
            message = face_size_warning(*in_hw, self.name)
            if message:
                print(message, file=sys.stderr)
                self._warned_sizes.add(in_hw)
        if sample_z:
            return self.network_sampled(lr, size, chunk_size, seed)
        return self.network(lr, size, chunk_size)

    def network(self, lr: torch.Tensor, size: tuple[int, int], chunk_size: int | None = None) -> torch.Tensor:
        """The model itself, (B,3,h,w) in [0,1] -> (B,3,H,W); the ONNX engine overrides this."""
        return self.model.render(lr, size, chunk_size=chunk_size, precision=self.precision)

    def network_sampled(self, lr: torch.Tensor, size: tuple[int, int], chunk_size: int | None,
                        seed: int | None) -> torch.Tensor:
        """:meth:`network` with ARASFSR's z drawn (from ``seed``) instead of its mean."""
        if getattr(self.model, "frequency", None) is None:
            raise InputError(f"sampling z needs a model with the frequency module (ARASFSR); "
                             f"{self.name} has no latent z")
        saved = self.model.sample, self.model.sample_seed
        self.model.sample, self.model.sample_seed = True, seed
        try:
            return self.network(lr, size, chunk_size)
        finally:
            self.model.sample, self.model.sample_seed = saved

    @torch.inference_mode()
    def upscale(self, image: ImageLike, *, scale: Scale | None = None,
                size: tuple[int, int] | None = None, chunk_size: int | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, uncertainty: bool = False,
                sample_z: bool = False, seed: int | None = None) -> ImageLike | tuple[ImageLike, np.ndarray]:
        """Super-resolve one image to ``scale`` x its size or to ``size = (width, height)``;
        ``scale`` is one factor or ``(sx, sy)``, width first like ``size``.

        ``uncertainty=True`` returns ``(image, map)``: the map is float32 (H, W), the
        output's size, the expected |output - truth| per pixel in grey levels (0-255, RGB
        mean) from :mod:`arasfsr.uncertainty`; deterministic, a few ms.

        Takes a PIL image or a uint8 array (HxW grayscale, HxWx3 RGB, HxWx4 RGBA) and returns
        the same kind: grayscale stays grayscale (super-resolved on its luminance), alpha is
        kept (resized apart from the colour), RGB stays RGB. A PIL image comes back as L,
        LA, RGB or RGBA with the ICC profile and EXIF of ``image.info``. ``sample_z`` and
        ``seed``: see :meth:`render` (default: the mean, deterministic).
        """
        return self.upscale_many([image], scale=scale, size=size, chunk_size=chunk_size, max_pixels=max_pixels,
                                 uncertainty=uncertainty, sample_z=sample_z, seed=seed)[0]

    @torch.inference_mode()
    def upscale_many(self, images: Sequence[ImageLike], *, scale: Scale | None = None,
                     size: tuple[int, int] | None = None, chunk_size: int | None = None,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS, batch_size: int | None = None,
                     uncertainty: bool = False, sample_z: bool = False,
                     seed: int | None = None) -> list[ImageLike] | list[tuple[ImageLike, np.ndarray]]:
        """:meth:`upscale` of each image, with the images that share their input and output
        sizes rendered together, at most ``batch_size`` per forward pass (None: all of them);
        ``uncertainty=True``: ``(image, map)`` pairs, as :meth:`upscale` gives.

        The results are those of :meth:`upscale` one by one (the model treats each image of
        a batch on its own; a seeded z draw too); a batch only saves the per-pass overheads.
        ``sample_z``, ``seed``: see :meth:`render`.
        """
        check_sampling(sample_z, seed)
        chunk_size = check_chunk_size(chunk_size)
        if batch_size is not None and (not _is_number(batch_size, numbers.Integral) or batch_size < 1):
            raise InputError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        prepared = [self._prepare(image, scale, size, max_pixels) for image in images]
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault((p.rgb.shape, p.out_size), []).append(i)
        results: list[ImageLike | None] = [None] * len(prepared)
        for (_, (out_w, out_h)), members in groups.items():
            step = batch_size or len(members)
            for start in range(0, len(members), step):
                part = members[start:start + step]
                lr = images_to_tensor(np.stack([prepared[i].rgb for i in part]), self.device)
                sr = self.render(lr, (out_h, out_w), chunk_size, sample_z=sample_z, seed=seed)
                for i, one in zip(part, sr):
                    results[i] = self._finish(images[i], prepared[i], one[None], uncertainty)
        return results

    def _prepare(self, image: ImageLike, scale: Scale | None, size: tuple[int, int] | None,
                 max_pixels: int | None) -> _Prepared:
        """The checked input of one image: its colour as RGB for the model, alpha apart."""
        if isinstance(image, np.ndarray):
            mode = {(2,): "L", (3, 3): "RGB", (3, 4): "RGBA"}.get((image.ndim, *image.shape[2:]))
            if image.dtype != np.uint8 or mode is None:
                raise InputError(f"array input must be uint8 HxW, HxWx3 or HxWx4, got {image.shape} {image.dtype}")
            if 0 in image.shape:
                raise InputError("input image is empty")
            pil = Image.fromarray(image)  # L, RGB or RGBA from the shape
        elif isinstance(image, Image.Image):
            pil = normalise_mode(image)[0]
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
                uncertainty: bool = False) -> ImageLike | tuple[ImageLike, np.ndarray]:
        """The model's (1,3,H,W) output as the kind of image ``image`` is (and its map)."""
        rgb = prepared.rgb
        # One luminance for a grayscale input: the model's three channels differ by a few levels.
        gray = prepared.mode == "L" or bool((rgb[..., :1] == rgb[..., 1:]).all())
        if gray:
            sr = sr.mean(1, keepdim=True).expand_as(sr)
        out = Image.fromarray(tensor_to_images(sr)[0]).convert(prepared.mode)
        if prepared.alpha is not None:
            out.putalpha(resize_alpha(prepared.alpha, prepared.out_size))
        result = np.asarray(out) if isinstance(image, np.ndarray) else carry_metadata(image, out)
        if not uncertainty:
            return result
        return result, uncertainty_map(images_to_tensor(rgb[None], sr.device), sr)[0].cpu().numpy()

    @torch.inference_mode()
    def upscale_batch(self, images: np.ndarray, size_hw: tuple[int, int],
                      chunk_size: int | None = None, *, sample_z: bool = False,
                      seed: int | None = None) -> np.ndarray:
        """(B,h,w,3) uint8 -> (B,H,W,3) uint8 at ``size_hw = (H, W)``, without upscale()'s size checks.

        ``chunk_size``: queries per forward pass, a positive integer (None: automatic).
        ``sample_z``, ``seed``: see :meth:`render`.
        """
        chunk_size = check_chunk_size(chunk_size)
        sr = self.render(images_to_tensor(images, self.device), tuple(size_hw), chunk_size,
                         sample_z=sample_z, seed=seed)
        return tensor_to_images(sr)


class OnnxUpscaler(Upscaler):
    """The same ``upscale`` run by onnxruntime on a model exported by ``arasfsr export``."""

    def __init__(self, model_or_path, name: str) -> None:
        from .onnx_engine import OnnxEngine

        self.engine = OnnxEngine(model_or_path)
        self.device = torch.device("cpu")
        self.name = name
        self.learned = True
        self._warned_sizes = set()

    def network(self, lr: torch.Tensor, size: tuple[int, int], chunk_size: int | None = None) -> torch.Tensor:
        return self.engine.render(lr, size, chunk_size)

    def network_sampled(self, lr: torch.Tensor, size: tuple[int, int], chunk_size: int | None,
                        seed: int | None) -> torch.Tensor:
        raise InputError("an exported ONNX model computes z's mean; sample z with the torch engine")


def check_sampling(sample_z: bool, seed: object) -> int | None:
    """A caller's z-sampling request: the seed (None: unseeded), or InputError."""
    if seed is None:
        return None
    if not sample_z:
        raise InputError("a seed is for sampling z; ask for sample_z too")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be an integer from 0 to 2**63-1, got {seed!r}")
    return int(seed)


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu",
               pretrained: bool = True, precision: str = "auto", engine: str = "torch") -> Upscaler:
    """A named model (see ``arasfsr models``) or a ``.safetensors`` checkpoint path.

    The name is resolved by :func:`arasfsr.registry.resolve`. ``pretrained=False``
    builds the named architecture and config with random weights (for training).
    ``precision`` ("auto", "fp32", "bf16") is the implicit decoder's; ``engine="onnx"``
    runs the model with onnxruntime (an ``.onnx`` file from ``arasfsr export``, or a
    model exported on the fly).
    """
    if engine == "onnx":
        if str(name_or_path).endswith(".onnx"):
            return OnnxUpscaler(Path(name_or_path), Path(name_or_path).stem)
        from .onnx_engine import export_onnx

        up = load_model(name_or_path, "cpu", pretrained, "fp32")
        return OnnxUpscaler(export_onnx(up.model), up.name)
    if engine != "torch":
        raise ModelError(f"unknown engine {engine!r}; use torch or onnx")
    device = _check_device(device)
    resolve_precision(precision, device)  # a bad precision fails before the model is built
    entry = resolve(name_or_path, trained=pretrained)
    if pretrained and entry.weights is not None:
        model = load_checkpoint(entry.weights)
    else:
        model = create_model(entry.arch, **entry.config)
    return Upscaler(model, entry.name, device, precision)


def _check_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was requested but no CUDA device is available; use --device cpu")
    return dev
