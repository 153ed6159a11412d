"""The practical protocol's random degradation mixture (ours, not the paper's).

A quarter of the inputs are plain bicubic, a quarter the authors' NN-JPEG, and half a
random chain: a bicubic, bilinear or nearest resize, then, each with probability 1/2,
a mild Gaussian blur (sigma 0.3-1.2 LR pixels), Gaussian noise (sigma 1-10 grey
levels) and JPEG (quality 30-90). Every draw comes from the ``rng`` passed in, so a
sample is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .degrade import jpeg, nn_jpeg, resize

RESAMPLERS = (Image.BICUBIC, Image.BILINEAR, Image.NEAREST)


def add_noise(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    noisy = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


def random_degradation(img: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """An LR input of ``img`` at ``size = (w, h)`` under a randomly drawn degradation."""
    pick = rng.random()
    if pick < 0.25:
        return resize(img, size)
    if pick < 0.5:
        return nn_jpeg(img, size)
    out = img.resize(size, RESAMPLERS[int(rng.integers(len(RESAMPLERS)))])
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.5:
        out = add_noise(out, float(rng.uniform(1.0, 10.0)), rng)
    if rng.random() < 0.5:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out
