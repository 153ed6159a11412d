"""Aligning faces to the UTKFace framing, and warping them back.

All transforms are 2x3 affine matrices on continuous pixel coordinates (pixel (i, j) covers
[j, j+1) x [i, i+1)), mapping a source picture to a destination picture. Sampling uses
torch's bicubic ``grid_sample``; down-sampling is anti-aliased first. Needs no detector.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Five landmarks (eye, eye, nose, mouth corner, mouth corner; x, y as fractions of the crop
# side) of the UTKFace training crops: the mean of the MTCNN detections on the 200
# utkface/val crops (tools/face_template.py). Eye centres are 0.394 of the side apart.
TEMPLATE = np.array([[0.2978, 0.2892], [0.6916, 0.2897], [0.4895, 0.5255],
                     [0.3236, 0.6904], [0.6670, 0.6912]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + shift taking ``src`` points to ``dst`` (2x3)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # Closed form for the 2-D case (Umeyama without reflection): z = a + ib.
    norm = (s ** 2).sum()
    if norm <= 0:
        raise ValueError("landmarks are degenerate (all at one point)")
    a = (s * d).sum() / norm
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / norm
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (md - rot @ ms)[:, None]])


def alignment_matrix(landmarks: np.ndarray, size: float) -> np.ndarray:
    """Photo -> aligned crop of side ``size`` (2x3)."""
    return similarity(landmarks, TEMPLATE * size)


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(photo -> crop matrix, the size x size uint8 crop) of the face with ``landmarks``."""
    matrix = alignment_matrix(landmarks, size)
    return matrix, crop(image, matrix, size)


def crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size uint8 crop that ``matrix`` (photo -> crop) cuts from ``image``."""
    return np.clip(np.round(warp(image, matrix, (size, size))), 0, 255).astype(np.uint8)


def natural_size(landmarks: np.ndarray) -> int:
    """Crop side at which the face keeps its own resolution (zoom about 1)."""
    eye = float(np.hypot(*(np.asarray(landmarks)[1] - np.asarray(landmarks)[0])))
    template_eye = float(np.hypot(*(TEMPLATE[1] - TEMPLATE[0])))
    return max(8, int(np.ceil(eye / template_eye)))


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer o inner (apply inner first)."""
    return to3(outer)[:2] @ to3(inner)


def invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(to3(m))[:2]


def to3(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, np.float64)[:2], [0.0, 0.0, 1.0]])


def zoom_of(m: np.ndarray) -> float:
    """Destination pixels per source pixel (geometric mean over both axes)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, np.float64)[:2, :2]))))


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t.permute(2, 0, 1)[None]


def _sample(src: torch.Tensor, back: np.ndarray, out_wh: tuple[int, int], x0: int = 0, y0: int = 0,
            mode: str = "bicubic") -> torch.Tensor:
    """Sample ``src`` (1xCxHxW) at back @ (destination pixel centres + (x0, y0))."""
    w, h = out_wh
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5 + y0,
                            torch.arange(w, dtype=torch.float64) + 0.5 + x0, indexing="ij")
    b = torch.from_numpy(np.asarray(back, np.float64))
    sx = b[0, 0] * xs + b[0, 1] * ys + b[0, 2]
    sy = b[1, 0] * xs + b[1, 1] * ys + b[1, 2]
    sh, sw = src.shape[-2:]
    grid = torch.stack([2 * sx / sw - 1, 2 * sy / sh - 1], dim=-1)[None].float()
    return F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=False)


def warp(image: np.ndarray, matrix: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """``image`` (HxWxC, uint8 or float) warped by ``matrix`` (source -> destination) into
    an out_wh = (w, h) picture; float32 in the input's value range."""
    src = np.asarray(image)
    zoom = zoom_of(matrix)
    if zoom < 0.9 and src.ndim == 3 and src.dtype == np.uint8:
        # Anti-alias: shrink the source with a proper filter first, then warp at zoom ~1.
        h, w = src.shape[:2]
        sw, sh = max(1, round(w * zoom)), max(1, round(h * zoom))
        src = np.asarray(Image.fromarray(src).resize((sw, sh), Image.BICUBIC, reducing_gap=None))
        matrix = compose(matrix, np.array([[w / sw, 0, 0], [0, h / sh, 0]]))
    out = _sample(_as_tensor(src), invert(matrix), out_wh)
    return out[0].permute(1, 2, 0).numpy()


def feather_mask(size: int, margin: float = 0.12) -> np.ndarray:
    """Soft rounded-square mask (size x size, float 0..1): 1 inside, falling smoothly to 0 at
    the crop's edge over ``margin`` of the side, so pasted faces leave no seam."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    r = (np.abs(c)[None, :] ** 4 + np.abs(c)[:, None] ** 4) ** 0.25  # superellipse radius
    inside = (1 - r) * size / 2 - 1  # pixels from the edge, the outer pixel ring at 0
    t = np.clip(inside / max(margin * size, 1.0), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def paste(canvas: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Blend ``crop`` into ``canvas`` (HxWx3 float, changed in place and returned).

    ``matrix`` maps canvas coordinates to crop coordinates; only the crop's footprint on the
    canvas is touched. ``mask`` (crop-sized, 0..1) weights the crop; default: feathered.
    """
    ch, cw = crop.shape[:2]
    if mask is None:
        mask = feather_mask(cw) if cw == ch else np.ones((ch, cw), np.float32)
    back = invert(matrix)  # crop -> canvas
    corners = np.array([[0, 0, 1], [cw, 0, 1], [0, ch, 1], [cw, ch, 1]], np.float64) @ back.T
    H, W = canvas.shape[:2]
    x0, y0 = max(0, int(np.floor(corners[:, 0].min()))), max(0, int(np.floor(corners[:, 1].min())))
    x1, y1 = min(W, int(np.ceil(corners[:, 0].max()))), min(H, int(np.ceil(corners[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return canvas
    both = np.concatenate([np.asarray(crop, np.float32), mask[..., None].astype(np.float32)], axis=2)
    # Zero padding outside the crop so the weight falls to 0 there.
    src = F.pad(_as_tensor(both), (2, 2, 2, 2))
    shifted = compose(np.array([[1, 0, 2], [0, 1, 2]], np.float64), matrix)
    vals = _sample(src, shifted, (x1 - x0, y1 - y0), x0, y0)[0].permute(1, 2, 0).numpy()
    colour, weight = vals[..., :-1], np.clip(vals[..., -1:], 0, 1)
    lo, hi = float(np.min(crop)), float(np.max(crop))
    colour = np.clip(colour, lo, hi)  # bicubic overshoot
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region + weight * (colour - region)
    return canvas
