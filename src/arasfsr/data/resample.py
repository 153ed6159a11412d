"""Pillow's bicubic and bilinear resize of whole uint8 batches on any torch device, bit-exact.

Pillow resizes an 8-bit image in two passes (horizontal, then vertical), each with
per-output-pixel filter coefficients rounded to 22-bit fixed point and each result
rounded to uint8. Written as matrices, a resize is ``round(Wy @ round(img @ Wx^T))``
(Pillow 13 on does the vertical pass first when the height shrinks by more than twice
as many pixels as the width: :func:`vertical_first`)
with the fixed-point coefficients as integers: in float64 every product and sum is an
exact integer (|sum| < 2^40), so the result equals Pillow's bit for bit, on a CPU or a
GPU, for a whole batch in two batched matrix products. Samples of one batch may have
different output sizes (rows of zeros pad them to a common size), a horizontal flip is
the weight matrix reversed, and a crop is a matrix whose columns outside the crop are zero.

``F.interpolate(..., antialias=True)`` uses the same filter but one float pass without
the rounding; :func:`pillow_weights` is what makes the training targets identical to the
Pillow-made ones evaluation uses (``tools/bench/degrade_parity.py`` measures both).
"""

from __future__ import annotations

import functools
import math

import PIL
import torch
from torch import Tensor

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images (32 - 8 - 2)
_ONE = float(1 << PRECISION_BITS)
_HALF = float(1 << (PRECISION_BITS - 1))
SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}


def _filter(kind: str, x: Tensor) -> Tensor:
    """Pillow's ``bicubic_filter`` (a = -0.5) and ``bilinear_filter``, same operation order."""
    x = x.abs()
    if kind == "bilinear":
        return torch.where(x < 1.0, 1.0 - x, torch.zeros_like(x))
    a = -0.5
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def pillow_weights(out_size: Tensor | int, in_size: Tensor | int, full: int, out_max: int,
                   offset: Tensor | int = 0, kind: str = "bicubic",
                   device: torch.device | str | None = None) -> Tensor:
    """Fixed-point resize matrices (B, out_max, full) as float64 integers.

    Sample b resizes the ``in_size[b]`` pixels from ``offset[b]`` of a ``full``-pixel axis
    (a crop, then a resize, as ``img.crop(...).resize(...)``) to ``out_size[b]`` pixels;
    rows from ``out_size[b]`` on are zero. Mirrors Pillow's ``precompute_coeffs`` and
    ``normalize_coeffs_8bpc`` (Resample.c) operation by operation, taps summed in order.
    """
    def vec(v: Tensor | int) -> Tensor:
        return torch.as_tensor(v, device=device).reshape(-1).to(torch.float64)

    out_n, in_n, off = vec(out_size), vec(in_size), vec(offset)
    b = max(len(out_n), len(in_n), len(off))
    out_n, in_n, off = (v.expand(b) if len(v) == 1 else v for v in (out_n, in_n, off))
    dev = out_n.device
    scale = (in_n / out_n)[:, None]                         # (B, 1)
    filterscale = scale.clamp(min=1.0)
    support = SUPPORT[kind] * filterscale
    xx = torch.arange(out_max, device=dev, dtype=torch.float64)[None, :]  # (1, O)
    center = (xx + 0.5) * scale                              # in0 = 0 within the crop
    ss = 1.0 / filterscale
    xmin = torch.trunc(center - support + 0.5).clamp(min=0)
    xmax = torch.minimum(torch.trunc(center + support + 0.5), in_n[:, None]) - xmin
    ksize = int(math.ceil(float(support.max()))) * 2 + 1
    taps = []
    total = torch.zeros_like(center)
    for x in range(ksize):  # sequential sum, as Pillow's loop
        w = _filter(kind, (x + xmin - center + 0.5) * ss)
        w = torch.where(x < xmax, w, torch.zeros_like(w))
        taps.append(w)
        total = total + w
    k = torch.stack(taps, dim=-1)                            # (B, O, K)
    k = torch.where(total[..., None] != 0, k / total[..., None], k)
    fixed = torch.where(k < 0, torch.trunc(-0.5 + k * _ONE), torch.trunc(0.5 + k * _ONE))
    valid = (xx < out_n[:, None])[..., None] & (torch.arange(ksize, device=dev)[None, None, :] < xmax[..., None])
    fixed = torch.where(valid, fixed, torch.zeros_like(fixed))
    cols = (xmin[..., None] + off[:, None, None] + torch.arange(ksize, device=dev, dtype=torch.float64))
    cols = cols.clamp(max=full - 1).long()                   # clamped columns carry zero weight
    weights = torch.zeros(b, out_max, full, dtype=torch.float64, device=dev)
    return weights.scatter_add_(2, cols, fixed)


def _round_fixed(v: Tensor) -> Tensor:
    """Pillow's ``clip8((sum + 2^21) >> 22)`` on exact float64 integers."""
    return torch.floor((v + _HALF) / _ONE).clamp_(0, 255)


_PILLOW_MAJOR = int(PIL.__version__.split(".")[0])


def vertical_first(in_w: int, in_h: int, out_w: int, out_h: int) -> bool:
    """Whether Pillow resizes ``in_w x in_h`` to ``out_w x out_h`` vertical pass first:
    from Pillow 13 on (python-pillow/Pillow#9549), when the height shrinks by more than
    twice as many pixels as the width (a rule read off Pillow 13's output, exact on 400
    random sizes; square to square is never vertical first)."""
    return _PILLOW_MAJOR >= 13 and out_h < in_h and 2 * (in_w - out_w) < in_h - out_h


def resample(images: Tensor, wy: Tensor, wx: Tensor, vfirst: Tensor | None = None) -> Tensor:
    """``images`` (B,C,H,W) holding uint8 values -> (B,C,Oy,Ox) float64 uint8 values.

    ``wy`` (B,Oy,H) and ``wx`` (B,Ox,W) from :func:`pillow_weights`; horizontal pass
    first, then vertical, each rounded as Pillow rounds; samples flagged in ``vfirst``
    (B,) the other way round (see :func:`vertical_first`).
    """
    x = images.to(torch.float64)
    wxt = wx.transpose(1, 2).unsqueeze(1)
    out = _round_fixed(torch.matmul(wy.unsqueeze(1), _round_fixed(torch.matmul(x, wxt))))
    if vfirst is not None:
        other = _round_fixed(torch.matmul(_round_fixed(torch.matmul(wy.unsqueeze(1), x)), wxt))
        out = torch.where(vfirst.view(-1, 1, 1, 1), other, out)
    return out


class WeightTable:
    """Resize matrices from a ``full``-pixel axis to every size from ``out_min`` to
    ``out_max``, made once (the smallest sizes have the longest filters: leave them out
    when no batch asks for them).

    ``table.rows(sizes)`` gathers (B, out_max, full) on the table's device; ``flip`` reverses
    the input axis of the chosen samples (a horizontal flip of the source).
    """

    def __init__(self, full: int, out_max: int, device: torch.device | str = "cpu", kind: str = "bicubic",
                 out_min: int = 1) -> None:
        self.full, self.out_min, self.out_max = full, out_min, out_max
        # One size at a time (each with its own filter length), on the CPU, then moved.
        self.table = torch.zeros(out_max, out_max, full, dtype=torch.float64)
        for n in range(out_min, out_max + 1):
            self.table[n - 1, :n] = pillow_weights(n, full, full, n, kind=kind)[0]
        self.table = self.table.to(device)

    def rows(self, sizes: Tensor, flip: Tensor | None = None) -> Tensor:
        w = self.table.index_select(0, sizes.to(self.table.device).long() - 1)
        if flip is not None:
            w = torch.where(flip.to(w.device).view(-1, 1, 1), w.flip(-1), w)
        return w


@functools.lru_cache(maxsize=4)
def weight_table(full: int, out_max: int, device: str = "cpu", out_min: int = 1) -> WeightTable:
    """A :class:`WeightTable` of bicubic matrices, made once per process and device."""
    return WeightTable(full, out_max, device, out_min=out_min)
