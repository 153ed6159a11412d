"""Which pixels are invented? A per-pixel map of the expected error of a super-resolved image.

The "gradient head" (chosen by measurement on utkface/val, see docs/uncertainty.md): a
four-number formula on the input and the output images only, so it works for every model,
the ONNX engine and ``restore`` alike, costs a few milliseconds and draws no random
numbers. Per output pixel:

    B     = bicubic up-sampling of the LR to the output size (the ``bicubic`` model)
    grad  = Sobel magnitude of grey(SR)        (grey = RGB mean, grey levels 0-255)
    added = RGB mean of |SR - B|               (what the model added over bicubic)
    z     = c0 + c1 log(eps + G(grad)) + c2 log(eps + G(added)) + c3 log2(scale)
    u     = k (side / 128)^e max(0, exp(z) - 1)

G is a Gaussian blur (sigma 2 output pixels), scale the geometric mean of the two factors,
clamped to the fitted range, side the geometric mean of the output's width and height,
clamped to 64..200 px (the sizes the size term e was fitted on). The c's are least
squares of log(1 + |SR - HR|) on utkface/val faces, k and e make u the *expected*
|SR - HR| in grey levels (RGB mean); all are data, ``uncertainty_head.json`` beside this
file, with the commands that fitted them.

The map ranks regions by how much detail the model had to invent; it is not a Bayesian
posterior and knows nothing of the model's internals.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .models.bicubic import bicubic_resize

if TYPE_CHECKING:
    from PIL import Image

HEAD_FILE = Path(__file__).with_name("uncertainty_head.json")
LEVELS = 255.0
# The heat map's fixed scale (grey levels), so that maps compare across images and scales:
# it covers the 99th percentile of u at x8 on utkface/test (about 20) without saturating.
HEAT_MAX = 24.0
HEAT_TICKS = (0, 6, 12, 18, 24)
COLOUR_MAP = "inferno"

_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0


@dataclass(frozen=True)
class GradientHead:
    """The fitted formula (see the module docstring); ``HEAD_FILE`` holds the values."""

    const: float
    grad: float
    added: float
    log2_scale: float
    calibration: float  # k: predicted typical error -> expected |error|
    sigma: float = 2.0
    eps: float = 0.1
    scale_range: tuple[float, float] = (1.0, 8.0)
    # The map scales by (output side / size_reference) ** size_exponent, the side (geometric
    # mean of the output's two) clamped to size_range: the same gradients mean a smaller
    # error on a larger output of a face (docs/uncertainty.md, "Across input sizes").
    size_exponent: float = 0.0
    size_reference: float = 128.0
    size_range: tuple[float, float] = (64.0, 200.0)

    @classmethod
    def from_json(cls, data: dict) -> GradientHead:
        c = data["coefficients"]
        size = data.get("size", {})
        return cls(c["const"], c["grad"], c["added"], c["log2_scale"], data["calibration"],
                   data["sigma"], data["eps"], tuple(data["scale_range"]), size.get("exponent", 0.0),
                   size.get("reference", 128.0), tuple(size.get("range", (64.0, 200.0))))

    def size_factor(self, out_hw: tuple[int, int]) -> float:
        """The size term's factor for an output of ``out_hw`` (H, W) pixels."""
        lo, hi = self.size_range
        side = min(max(math.sqrt(out_hw[0] * out_hw[1]), lo), hi)
        return (side / self.size_reference) ** self.size_exponent


@lru_cache(maxsize=1)
def _head_file() -> dict:
    return json.loads(HEAD_FILE.read_text())


@lru_cache(maxsize=1)
def default_head() -> GradientHead:
    return GradientHead.from_json(_head_file())


@lru_cache(maxsize=None)
def head_for(model: str | None) -> GradientHead:
    """The head for the model named ``model``: the shared coefficients, with the model's own
    calibration where the head file has one (a model for degraded inputs makes larger errors
    than the default at the same features), else the default's."""
    own = _head_file().get("models", {}).get(model or "")
    return replace(default_head(), calibration=own["calibration"]) if own else default_head()



def sobel_magnitude(img: Tensor) -> Tensor:
    """(B,3,H,W) in [0,1] -> (B,1,H,W) gradient magnitude of the grey image in grey levels
    (Sobel kernels / 8, edge pixels repeated)."""
    return grey_sobel_magnitude(img.clamp(0, 1).mean(dim=1, keepdim=True) * LEVELS)


def grey_sobel_magnitude(grey: Tensor) -> Tensor:
    """(B,1,H,W) -> (B,1,H,W) Sobel gradient magnitude (kernels / 8, edge pixels repeated)."""
    pad = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    k = _SOBEL.to(grey.device, grey.dtype)
    gx = F.conv2d(pad, k.view(1, 1, 3, 3))
    gy = F.conv2d(pad, k.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx ** 2 + gy ** 2)


def _mirror_index(n: int, r: int, device: torch.device) -> Tensor:
    """Indices of a length-n axis padded by r on each side, mirrored with the edge repeated
    (scipy's gaussian_filter mode "reflect"); valid for any n >= 1."""
    idx = torch.arange(-r, n + r, device=device)
    period = 2 * n
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - 1 - idx, idx)


def gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    """(B,1,H,W) separable Gaussian blur, radius round(4 sigma), mirrored edges."""
    if sigma <= 0:
        return img
    r = int(4 * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    h, w = img.shape[-2:]
    img = F.conv2d(img.index_select(3, _mirror_index(w, r, img.device)), k.view(1, 1, 1, -1))
    return F.conv2d(img.index_select(2, _mirror_index(h, r, img.device)), k.view(1, 1, -1, 1))


def effective_scale(lr_hw: tuple[int, int], out_hw: tuple[int, int], head: GradientHead | None = None) -> float:
    """Geometric mean of the two factors, clamped to the range the head was fitted on."""
    lo, hi = (head or default_head()).scale_range
    s = math.sqrt(out_hw[0] / lr_hw[0] * out_hw[1] / lr_hw[1])
    return min(max(s, lo), hi)


def head_features(lr: Tensor, sr: Tensor, sigma: float = 2.0) -> tuple[Tensor, Tensor]:
    """(G(grad), G(added)), each (B,1,H,W) in grey levels, of LR (B,3,h,w) and SR (B,3,H,W)
    in [0,1] (SR as rendered; clamped here)."""
    lr, sr = lr.float(), sr.float().clamp(0, 1)
    added = (sr - bicubic_resize(lr, sr.shape[-2:])).abs().mean(dim=1, keepdim=True) * LEVELS
    return gaussian_blur(sobel_magnitude(sr), sigma), gaussian_blur(added, sigma)


def log_prediction(grad: Tensor, added: Tensor, scale: float, head: GradientHead) -> Tensor:
    """z of the module docstring: the head's prediction of log(1 + |error|)."""
    return (head.const + head.grad * torch.log(head.eps + grad) + head.added * torch.log(head.eps + added)
            + head.log2_scale * math.log2(scale))


@torch.inference_mode()
def uncertainty_map(lr: Tensor, sr: Tensor, head: GradientHead | None = None) -> Tensor:
    """(B,3,h,w) LR and (B,3,H,W) SR in [0,1] -> (B,H,W) float32: the expected |SR - HR| per
    pixel in grey levels (RGB mean, 0-255). Deterministic: no sampling."""
    head = head or default_head()
    grad, added = head_features(lr, sr, head.sigma)
    scale = effective_scale(lr.shape[-2:], sr.shape[-2:], head)
    z = log_prediction(grad, added, scale, head)
    k = head.calibration * head.size_factor(tuple(sr.shape[-2:]))
    return (k * torch.expm1(z).clamp(min=0))[:, 0].float()


@torch.inference_mode()
def gradient_baseline(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """The trivial map any user could compute: (B,H,W) Sobel magnitude of the grey bicubic
    up-sampling of ``lr`` to ``size = (H, W)``, grey levels."""
    return sobel_magnitude(bicubic_resize(lr.float(), size))[:, 0]


# --- pictures and files ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _colour_table() -> np.ndarray:
    """(256, 3) uint8 of :data:`COLOUR_MAP` (matplotlib is imported once, on first use)."""
    from matplotlib import colormaps

    return (colormaps[COLOUR_MAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colourise(u: np.ndarray, vmax: float = HEAT_MAX) -> np.ndarray:
    """(H, W) grey levels -> (H, W, 3) uint8 on the fixed scale 0..vmax (clipped above)."""
    idx = np.clip(np.nan_to_num(np.asarray(u, np.float32)) / vmax, 0, 1) * 255
    return _colour_table()[idx.round().astype(np.uint8)]


def _legend(height: int, faces: bool) -> Image.Image:
    """The colour bar panel: the scale in grey levels and what the colours mean."""
    from PIL import Image, ImageDraw, ImageFont

    fs = int(np.clip(round(height / 22), 10, 28))
    font = ImageFont.load_default(size=fs)
    lines = ["expected", "|error|", "(grey levels", "of 255)"]
    note = ["grey: no face,", "not estimated"] if faces else []
    width = int(max(font.getlength(t) for t in lines + note + [f"{HEAT_MAX:g}+"]) + 2.5 * fs + 2 * fs)
    top = round(len(lines) * fs * 1.25 + fs)
    bottom = round(len(note) * fs * 1.25 + fs)
    bar_h = max(height - top - bottom - fs, 5 * fs)
    panel = Image.new("RGB", (width, top + bar_h + bottom + fs), "white")
    draw = ImageDraw.Draw(panel)
    for i, t in enumerate(lines):
        draw.text((fs // 2, fs // 2 + round(i * fs * 1.25)), t, fill="black", font=font)
    ramp = _colour_table()[np.linspace(255, 0, bar_h).round().astype(int)]  # top = high
    bar_w = fs
    panel.paste(Image.fromarray(np.repeat(ramp[:, None], bar_w, axis=1)), (fs // 2, top))
    for tick in HEAT_TICKS:
        y = top + round((1 - tick / HEAT_MAX) * (bar_h - 1))
        draw.line([(fs // 2 + bar_w, y), (fs // 2 + bar_w + fs // 3, y)], fill="black")
        label = f"{tick:g}+" if tick == HEAT_TICKS[-1] else f"{tick:g}"
        draw.text((fs // 2 + bar_w + fs // 2, y), label, fill="black", font=font, anchor="lm")
    for i, t in enumerate(note):
        draw.text((fs // 2, top + bar_h + fs // 2 + round(i * fs * 1.25)), t, fill="black", font=font)
    return panel


def heat_map_picture(u: np.ndarray, coverage: np.ndarray | None = None,
                     background: Image.Image | None = None) -> Image.Image:
    """The map in colour on the fixed scale 0..:data:`HEAT_MAX`, with a colour bar on the
    right. With ``coverage`` (0..1, restore's faces) the colour is laid over a faded grey
    copy of ``background`` (the output photo) by that weight: grey means not estimated."""
    from PIL import Image

    rgb = colourise(u).astype(np.float32)
    if coverage is not None:
        h, w = u.shape
        grey = (np.asarray(background.convert("L"), np.float32) if background is not None
                else np.full((h, w), 128, np.float32))
        faded = np.repeat((150 + 0.35 * (grey - 128))[..., None], 3, axis=2)
        weight = np.clip(coverage, 0, 1)[..., None]
        rgb = faded + weight * (rgb - faded)
    heat = Image.fromarray(np.clip(rgb.round(), 0, 255).astype(np.uint8))
    legend = _legend(heat.height, faces=coverage is not None)
    canvas = Image.new("RGB", (heat.width + legend.width, max(heat.height, legend.height)), "white")
    canvas.paste(heat, (0, 0))
    canvas.paste(legend, (heat.width, 0))
    return canvas


def uncertainty_paths(output: Path) -> tuple[Path, Path]:
    """``NAME_uncertainty.png`` (the picture) and ``NAME_uncertainty.npy`` (the values) beside
    the output ``NAME.ext``."""
    output = Path(output)
    return (output.with_name(f"{output.stem}_uncertainty.png"), output.with_name(f"{output.stem}_uncertainty.npy"))


def write_uncertainty(u: np.ndarray, output: Path, overwrite: bool = False, coverage: np.ndarray | None = None,
                      background: Image.Image | None = None) -> tuple[Path, Path]:
    """Write the picture and the float32 values of the map beside ``output``, atomically."""
    from .imageio import refuse_existing, write_file, write_image

    picture, values = uncertainty_paths(output)
    refuse_existing(values, overwrite)
    write_image(heat_map_picture(u, coverage, background), picture, overwrite=overwrite)
    write_file(values, lambda f: np.save(f, np.asarray(u, np.float32)), replace=overwrite)
    return picture, values
