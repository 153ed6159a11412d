"""Candidate per-pixel uncertainty estimators for ARASFSR (issue 14 study, not shipped code).

Everything here reads the model as it is on main (``arasfsr.models.core``) and re-does
``render``/``query_fast`` so that the four local-ensemble predictions are kept instead of
being summed. Maps are (H, W) float32 in 8-bit units (0..255), averaged over RGB.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from arasfsr.models.core import (area_weights, coord_range, denormalise, locate_codes, normalise,
                                 scale_ratio)
from arasfsr.models.bicubic import bicubic_resize as bicubic_up  # noqa: F401  (the study's name)
from arasfsr.runtime import autocast, compute_dtype

LEVELS = 255.0
# Sub-pixel shifts of the LR input (in LR pixels, (dy, dx)) used by test-time augmentation.
SHIFTS = ((0.25, 0.25), (0.25, -0.25), (-0.25, 0.25), (-0.25, -0.25))


def query_parts(model, state, coord: Tensor, ratio: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``ImplicitSR.query_fast`` that also returns the weighted std of the 4 neighbour
    predictions: (out (B,Q,3), spread (B,Q,3)), both in the model's [-1, 1] scale."""
    b, q = coord.shape[:2]
    h, w = state.feat.shape[-2:]
    ratio_q = ratio[:, None, :].expand(-1, q, -1).to(coord.dtype)
    ctx = model.fast_context(state, model.query_context(state, coord, ratio_q), dtype)
    nb = locate_codes(coord, h, w, model.local_ensemble)
    k = nb.index.shape[0]
    index = nb.index + (torch.arange(b, device=coord.device) * (h * w)).view(1, b, 1)
    rows = state.proj.index_select(0, index.reshape(-1))
    hidden = model.neighbour_hidden(state, rows, nb, ctx, dtype)
    with autocast(coord.device, dtype):
        pred = model.decode_hidden(state, hidden.view(k, b, q, -1), nb, ctx)
    pred = pred.to(coord.dtype)
    weights = area_weights(nb.rel_coord).unsqueeze(-1)
    mean = (pred * weights).sum(dim=0)
    spread = ((pred - mean).pow(2) * weights).sum(dim=0).sqrt()
    extra = model.skip(state, coord)
    return (mean if extra is None else mean + extra), spread


@torch.inference_mode()
def render_parts(model, lr: Tensor, size: tuple[int, int], offset: tuple[float, float] = (0.0, 0.0),
                 chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """``model.render`` (fast path, precision "auto" as ``upscale`` runs it) at pixel centres moved by
    ``offset`` (normalised units); returns (sr in [0,1] unclamped, ensemble std in [0,1] units)."""
    b = lr.shape[0]
    out_h, out_w = size
    dtype = compute_dtype("auto", lr.device)
    state = model.encode_fast(normalise(lr), dtype)
    ratio = scale_ratio(lr.shape[-2:], size, b, lr.device).to(lr.dtype)
    sr = lr.new_empty(b, 3, out_h * out_w)
    spread = lr.new_empty(b, 3, out_h * out_w)
    shift = torch.tensor(offset, dtype=lr.dtype)
    for start in range(0, out_h * out_w, chunk):
        stop = min(start + chunk, out_h * out_w)
        c = (coord_range(out_h, out_w, start, stop, lr.device, lr.dtype) + shift).unsqueeze(0).expand(b, -1, -1)
        pred, sp = query_parts(model, state, c, ratio, dtype)
        sr[:, :, start:stop] = denormalise(pred).transpose(1, 2)
        spread[:, :, start:stop] = (sp * 0.5).transpose(1, 2)
    return sr.view(b, 3, out_h, out_w), spread.view(b, 3, out_h, out_w)


def shift_lr(lr: Tensor, dy: float, dx: float) -> Tensor:
    """LR'(p) = LR(p + (dy, dx)) by bicubic resampling (border padded), for TTA."""
    b, _, h, w = lr.shape
    from arasfsr.models.core import make_coord
    grid = make_coord((h, w), dtype=lr.dtype).view(1, h, w, 2)
    grid = grid + torch.tensor([2 * dy / h, 2 * dx / w], dtype=lr.dtype)
    out = F.grid_sample(lr, grid.flip(-1).expand(b, -1, -1, -1), mode="bicubic",
                        padding_mode="border", align_corners=False)
    return out.clamp(0, 1)


@torch.inference_mode()
def render_shifted(model, lr: Tensor, size: tuple[int, int], dy: float, dx: float) -> Tensor:
    """The SR of the LR shifted by (dy, dx) LR pixels, queried where the true pixel centres fall."""
    h, w = lr.shape[-2:]
    sr, _ = render_parts(model, shift_lr(lr, dy, dx), size, offset=(-2 * dy / h, -2 * dx / w))
    return sr


@torch.inference_mode()
def render_flipped(model, lr: Tensor, size: tuple[int, int]) -> Tensor:
    sr, _ = render_parts(model, lr.flip(-1), size)
    return sr.flip(-1)


@torch.inference_mode()
def latent_samples(model, lr: Tensor, size: tuple[int, int], k: int, seed: int = 0) -> list[Tensor]:
    """K renders with the frequency latent drawn (``model.sample = True``)."""
    torch.manual_seed(seed)
    model.sample = True
    try:
        return [render_parts(model, lr, size)[0] for _ in range(k)]
    finally:
        model.sample = False


def rgb_mean_std(samples: list[Tensor]) -> np.ndarray:
    """Std over samples (unbiased=False) per channel, averaged over RGB, 8-bit units: (H, W)."""
    stack = torch.stack([s.clamp(0, 1) for s in samples])
    return (stack.std(dim=0, correction=0).mean(dim=1)[0] * LEVELS).numpy().astype(np.float32)


_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0


def sobel_magnitude(img: Tensor) -> np.ndarray:
    """Gradient magnitude (Sobel, replicate-padded) of the grey (mean RGB) image: (H, W), 8-bit units."""
    grey = img.clamp(0, 1).mean(dim=1, keepdim=True) * LEVELS
    pad = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(pad, _SOBEL.view(1, 1, 3, 3))
    gy = F.conv2d(pad, _SOBEL.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx ** 2 + gy ** 2)[0, 0].numpy().astype(np.float32)


def gaussian_blur(m: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a map (reflect padded); sigma in output pixels, 0 = identity."""
    if sigma <= 0:
        return m
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(m, sigma, mode="reflect").astype(np.float32)
