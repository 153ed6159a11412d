"""Degradations: how a ground-truth face becomes an LR input. One table, one signature.

Like the paper (and unlike patch-based SISR) a sample is the whole face: the ground
truth is resized to the HR size and, separately, degraded to the LR size by a named
entry of :data:`DEGRADATIONS`, each called as ``fn(img, size, rng)``:

- ``bicubic``: Pillow's bicubic resize, anti-aliased when shrinking (as the authors' code).
- ``nn-jpeg``: nearest-neighbour resize then JPEG at quality 65, the authors'
  surveillance-like "NN-JPEG" degradation.
- ``mixture``: the practical protocol's random mixture (ours, not the paper's). A quarter
  of the inputs are plain bicubic, a quarter NN-JPEG, and half a random chain: a bicubic,
  bilinear or nearest resize, then, each with probability 1/2, a mild Gaussian blur
  (sigma 0.3-1.2 LR pixels), Gaussian noise (sigma 1-10 grey levels) and JPEG (quality
  30-90). Every draw comes from the ``rng`` passed in, so a sample is a pure function of
  its seed; the fixed kinds draw nothing from it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # loaded by the functions: the command line lists the table's names without them
    import numpy as np
    from PIL import Image

NN_JPEG_QUALITY = 65
RESAMPLERS = ("BICUBIC", "BILINEAR", "NEAREST")  # of PIL.Image.Resampling, in the mixture's draw order

Size = tuple[int, int]  # (w, h)
Degradation = Callable[["Image.Image", Size, "np.random.Generator"], "Image.Image"]


def resize(img: Image.Image, size: Size) -> Image.Image:
    """Bicubic resize to ``size = (w, h)`` (anti-aliased when shrinking)."""
    from PIL import Image

    return img.resize(size, Image.BICUBIC)


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    from PIL import Image

    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def nn_jpeg(img: Image.Image, size: Size, quality: int = NN_JPEG_QUALITY) -> Image.Image:
    from PIL import Image

    return jpeg(img.resize(size, Image.NEAREST), quality)


def add_noise(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    import numpy as np
    from PIL import Image

    arr = np.asarray(img, dtype=np.float32)
    noisy = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


def mixture(img: Image.Image, size: Size, rng: np.random.Generator) -> Image.Image:
    """An LR input of ``img`` at ``size = (w, h)`` under a randomly drawn degradation."""
    from PIL import Image, ImageFilter

    pick = rng.random()
    if pick < 0.25:
        return resize(img, size)
    if pick < 0.5:
        return nn_jpeg(img, size)
    out = img.resize(size, Image.Resampling[RESAMPLERS[int(rng.integers(len(RESAMPLERS)))]])
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.5:
        out = add_noise(out, float(rng.uniform(1.0, 10.0)), rng)
    if rng.random() < 0.5:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out


DEGRADATIONS: dict[str, Degradation] = {
    "bicubic": lambda img, size, rng: resize(img, size),
    "nn-jpeg": lambda img, size, rng: nn_jpeg(img, size),
    "mixture": mixture,
}


def degrade(img: Image.Image, size: Size, kind: str = "bicubic",
            rng: np.random.Generator | None = None) -> Image.Image:
    """The LR input of ``img`` at ``size = (w, h)`` by the degradation named ``kind``.

    ``rng`` feeds the random kinds (``mixture``); without one they draw from a fixed seed,
    so the same call gives the same picture.
    """
    import numpy as np

    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[kind](img, size, rng if rng is not None else np.random.default_rng(0))
