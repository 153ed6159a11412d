"""Degradations: how a ground-truth face becomes an HR target and an LR input.

Like the paper (and unlike patch-based SISR) a sample is the whole face: the ground
truth is resized to the HR size and, separately, to the LR size.
- ``bicubic``: Pillow's bicubic resize, anti-aliased when shrinking (as the authors' code).
- ``nn-jpeg``: nearest-neighbour resize then JPEG at quality 65, the authors'
  surveillance-like "NN-JPEG" degradation.
"""

from __future__ import annotations

import io

from PIL import Image

DEGRADATIONS = ("bicubic", "nn-jpeg")
NN_JPEG_QUALITY = 65


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bicubic resize to ``size = (w, h)`` (anti-aliased when shrinking)."""
    return img.resize(size, Image.BICUBIC)


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def nn_jpeg(img: Image.Image, size: tuple[int, int], quality: int = NN_JPEG_QUALITY) -> Image.Image:
    return jpeg(img.resize(size, Image.NEAREST), quality)


def degrade(img: Image.Image, size: tuple[int, int], kind: str = "bicubic") -> Image.Image:
    """The LR input of ``img`` at ``size = (w, h)`` by a named degradation."""
    if kind == "bicubic":
        return resize(img, size)
    if kind == "nn-jpeg":
        return nn_jpeg(img, size)
    raise ValueError(f"unknown degradation {kind!r}; choose from {DEGRADATIONS}")
