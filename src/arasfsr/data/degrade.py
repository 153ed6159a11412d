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
- ``realistic``: a Real-ESRGAN-style chain with the moderate ranges of :data:`REALISTIC`
  (a training config's ``data.realistic`` overrides them): per round a Gaussian blur
  (isotropic, or anisotropic and rotated), a bicubic, bilinear or area reduction, Gaussian
  or Poisson noise (colour or grey) and JPEG; sometimes a second round (docs/degradations.md).
  :func:`draw_realistic` draws a face's :class:`Round` s, :func:`apply_realistic` applies them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

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


# The realistic chain's settings: probabilities, [min, max] ranges drawn uniformly, and the
# reduction methods drawn from. Moderate, for a fidelity model: blurrier and far less noisy
# than Real-ESRGAN's draws (noise up to 30 grey levels). On 100 utkface/val faces at 40 px the
# inputs' noise estimate (Immerkaer) and mean second difference have the percentiles of the 20
# realworld/ faces at their real size (docs/degradations.md).
REALISTIC: dict[str, Any] = {
    "clean_prob": 0.0,             # a plain bicubic input instead (clean faces kept in training)
    "blur_prob": 0.9,              # first round
    "blur_sigma": [0.3, 1.8],      # Gaussian sigma, in pixels of the size the round reduces to
    "iso_prob": 0.5,               # isotropic; else two sigmas of that range and an angle
    "resize": ["bicubic", "bilinear", "area"],  # drawn uniformly, per round
    "noise_prob": 0.7,
    "gaussian_prob": 0.5,          # Gaussian noise, else Poisson
    "gaussian_sigma": [1.0, 8.0],  # grey levels of 255
    "poisson_scale": [0.05, 0.5],  # x photon noise of 256 levels (about sqrt(value) grey levels)
    "grey_noise_prob": 0.4,        # one noise for the three channels
    "jpeg_prob": 0.9,
    "jpeg_quality": [40, 95],
    "second_prob": 0.4,            # a second round (Real-ESRGAN's second order)
    "second_scale": [1.0, 2.0],    # the first round then reduces to LR x this, the second to LR
    "blur2_prob": 0.8,             # the second round's blur (its noise and JPEG: as the first's)
    "blur2_sigma": [0.2, 1.0],
}
RESIZE_METHODS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "area": "BOX"}  # PIL.Image.Resampling
WORK_SCALE = 4  # a round blurs at most this many times its output size: cost follows the LR size
POISSON_LEVELS = 256


@dataclass(frozen=True)
class Blur:
    """A Gaussian kernel: sigmas along and across ``angle`` (radians), in output pixels."""

    sigma: tuple[float, float]
    angle: float = 0.0


@dataclass(frozen=True)
class Noise:
    kind: str     # gaussian | poisson
    level: float  # gaussian: sigma in grey levels; poisson: the scale
    grey: bool
    seed: int     # of the noise's own generator


@dataclass(frozen=True)
class Round:
    """One round of the realistic chain: blur, reduce to ``scale`` x the LR size, noise, JPEG."""

    scale: float
    blur: Blur | None
    resize: str
    noise: Noise | None
    jpeg: int | None


def realistic_settings(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`REALISTIC` with ``settings`` over it (unknown keys refused)."""
    unknown = sorted(set(settings or {}) - set(REALISTIC))
    if unknown:
        raise ValueError(f"unknown realistic setting(s) {', '.join(unknown)}; known: {', '.join(REALISTIC)}")
    return {**REALISTIC, **(settings or {})}


def draw_realistic(rng: np.random.Generator, settings: Mapping[str, Any] | None = None) -> tuple[Round, ...]:
    """A face's rounds, all drawn from ``rng``; none: a plain bicubic input."""
    s = realistic_settings(settings)
    if rng.random() < s["clean_prob"]:
        return ()
    second = rng.random() < s["second_prob"]
    scales = [float(rng.uniform(*s["second_scale"])), 1.0] if second else [1.0]
    rounds = []
    for i, scale in enumerate(scales):
        blur = None
        if rng.random() < s["blur2_prob" if i else "blur_prob"]:
            lo, hi = s["blur2_sigma" if i else "blur_sigma"]
            if rng.random() < s["iso_prob"]:
                sigma = float(rng.uniform(lo, hi))
                blur = Blur((sigma, sigma))
            else:
                blur = Blur((float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))), float(rng.uniform(0, math.pi)))
        method = s["resize"][int(rng.integers(len(s["resize"])))]
        noise = None
        if rng.random() < s["noise_prob"]:
            gaussian = rng.random() < s["gaussian_prob"]
            level = float(rng.uniform(*s["gaussian_sigma" if gaussian else "poisson_scale"]))
            noise = Noise("gaussian" if gaussian else "poisson", level, bool(rng.random() < s["grey_noise_prob"]),
                          int(rng.integers(2**63)))
        quality = int(rng.integers(s["jpeg_quality"][0], s["jpeg_quality"][1] + 1)) if rng.random() < s["jpeg_prob"] else None
        rounds.append(Round(scale, blur, method, noise, quality))
    return tuple(rounds)


def gaussian_kernel(blur: Blur, stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The normalised kernel (rows y, columns x) of ``blur`` on a grid ``stretch`` = (x, y)
    times finer than the output pixels; 3 sigma on each side."""
    import numpy as np

    (along, across), c, s = blur.sigma, math.cos(blur.angle), math.sin(blur.angle)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([along**2, across**2]) @ rot.T
    cov = np.diag(stretch) @ cov @ np.diag(stretch)  # in grid pixels
    rx, ry = (max(1, math.ceil(3 * math.sqrt(cov[k, k]))) for k in (0, 1))
    y, x = np.mgrid[-ry:ry + 1, -rx:rx + 1].astype(np.float64)
    inv = np.linalg.inv(cov)
    k = np.exp(-0.5 * (inv[0, 0] * x * x + 2 * inv[0, 1] * x * y + inv[1, 1] * y * y))
    return k / k.sum()


def convolve(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``arr`` (H, W, C) convolved with ``kernel`` (odd sides), edges mirrored; by FFT in
    float32 at a fast transform size, as a wide kernel on a whole face costs too much directly."""
    import numpy as np
    from scipy import fft

    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    h, w = arr.shape[:2]
    padded = np.pad(arr.astype(np.float32), ((ry, ry), (rx, rx), (0, 0)), mode="reflect")
    # Zeros past the mirrored edges change nothing kept: output pixel i is found at i + 2r and
    # reads only the padded picture.
    shape = tuple(fft.next_fast_len(n, real=True) for n in padded.shape[:2])
    spectrum = fft.rfft2(padded, s=shape, axes=(0, 1)) * fft.rfft2(kernel.astype(np.float32), s=shape)[..., None]
    return fft.irfft2(spectrum, s=shape, axes=(0, 1))[2 * ry:2 * ry + h, 2 * rx:2 * rx + w]


def _to_image(arr: np.ndarray) -> Image.Image:
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def add_realistic_noise(img: Image.Image, noise: Noise) -> Image.Image:
    """Gaussian noise of sigma ``level``, or Poisson (photon) noise scaled by ``level``;
    ``grey``: the same noise in the three channels (Poisson: of the luma)."""
    import numpy as np

    arr = np.asarray(img, dtype=np.float64)
    rng = np.random.default_rng(noise.seed)
    shape = (*arr.shape[:2], 1) if noise.grey else arr.shape
    if noise.kind == "gaussian":
        delta = rng.normal(0.0, noise.level, shape)
    else:
        base = arr @ np.array([0.299, 0.587, 0.114])[:, None] if noise.grey else arr
        lam = base / 255 * POISSON_LEVELS
        delta = (rng.poisson(lam) - lam) / POISSON_LEVELS * 255 * noise.level
    return _to_image(arr + delta)


def apply_realistic(img: Image.Image, size: Size, rounds: tuple[Round, ...]) -> Image.Image:
    """The LR input of ``img`` at ``size = (w, h)`` under drawn ``rounds`` (none: bicubic)."""
    import numpy as np
    from PIL import Image

    out = img
    for r in rounds:
        target = (max(1, round(size[0] * r.scale)), max(1, round(size[1] * r.scale)))
        if r.blur is not None:
            work = (min(out.width, WORK_SCALE * target[0]), min(out.height, WORK_SCALE * target[1]))
            if work != out.size:  # a clean reduction first: the blur then costs what the LR size asks
                out = out.resize(work, Image.BICUBIC)
            stretch = (work[0] / target[0], work[1] / target[1])
            out = _to_image(convolve(np.asarray(out), gaussian_kernel(r.blur, stretch)))
        out = out.resize(target, Image.Resampling[RESIZE_METHODS[r.resize]])
        if r.noise is not None:
            out = add_realistic_noise(out, r.noise)
        if r.jpeg is not None:
            out = jpeg(out, r.jpeg)
    return out if rounds else resize(img, size)


def realistic(img: Image.Image, size: Size, rng: np.random.Generator,
              settings: Mapping[str, Any] | None = None) -> Image.Image:
    """An LR input of ``img`` at ``size = (w, h)`` under a drawn realistic degradation."""
    return apply_realistic(img, size, draw_realistic(rng, settings))


DEGRADATIONS: dict[str, Degradation] = {
    "bicubic": lambda img, size, rng: resize(img, size),
    "nn-jpeg": lambda img, size, rng: nn_jpeg(img, size),
    "mixture": mixture,
    "realistic": realistic,
}


def degrade(img: Image.Image, size: Size, kind: str = "bicubic",
            rng: np.random.Generator | None = None,
            realistic_ranges: Mapping[str, Any] | None = None) -> Image.Image:
    """The LR input of ``img`` at ``size = (w, h)`` by the degradation named ``kind``.

    ``rng`` feeds the random kinds (``mixture``, ``realistic``); without one they draw from a
    fixed seed, so the same call gives the same picture. ``realistic_ranges`` (a config's
    ``data.realistic``) override :data:`REALISTIC` for ``realistic``; other kinds ignore them.
    """
    import numpy as np

    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    if kind == "realistic":
        return realistic(img, size, rng, realistic_ranges)
    return DEGRADATIONS[kind](img, size, rng)
