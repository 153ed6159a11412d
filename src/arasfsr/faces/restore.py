"""Faces in whole photos: up-scale the photo, super-resolve each face aligned, paste it back.

For each face: the similarity transform that puts its landmarks on the UTKFace template
gives an aligned crop at the face's own resolution (zoom about 1); the face model
super-resolves the crop by the photo's scale; the result is warped into the up-scaled photo
through the same transform (composed with the photo's scaling) and blended with a feathered
mask. The photo itself is up-scaled by bicubic (or any model) underneath.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..api import Scale, Upscaler, load_model, output_size
from ..defaults import DEFAULT_MAX_PIXELS
from ..errors import InputError
from ..imageio import carry_metadata
from ..runtime import release_freed_memory
from .align import aligned_crop, compose, crop, feather_mask, natural_size, paste
from .detect import Detector, Face


@dataclass
class RestoredFace:
    face: Face
    to_crop: np.ndarray  # input photo -> low-resolution aligned crop (2x3)
    crop_in: int  # side of that crop
    to_crop_out: np.ndarray  # output photo -> super-resolved crop (2x3)
    crop_out: int
    crop: np.ndarray = field(repr=False)  # the super-resolved crop, uint8
    uncertainty: np.ndarray | None = field(default=None, repr=False)  # its map (float32), if asked

    def to_json(self) -> dict:
        return {**self.face.to_json(), "crop_in": self.crop_in, "crop_out": self.crop_out,
                "input_to_crop": np.round(self.to_crop, 6).tolist(),
                "output_to_crop": np.round(self.to_crop_out, 6).tolist()}


@dataclass
class RestoreResult:
    image: Image.Image | None  # None with faces_only
    faces: list[RestoredFace]
    size: tuple[int, int]
    uncertainty: np.ndarray | None = None  # the faces' maps pasted (0 elsewhere), if asked
    coverage: np.ndarray | None = None  # the faces' share of each output pixel (0..1), with the map


def _match_colour(sr: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift each channel of ``sr`` so its masked mean equals that of ``ref``: the face model
    adds detail, the photo keeps its colours."""
    w = mask[..., None] / max(float(mask.sum()), 1e-6)
    shift = (ref.astype(np.float32) * w).sum((0, 1)) - (sr.astype(np.float32) * w).sum((0, 1))
    return np.clip(sr + shift, 0, 255)


def paste_face_maps(size_wh: tuple[int, int], maps: list[np.ndarray],
                    to_crop: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(map, coverage): the per-face maps (each crop-sized) warped into an output of
    ``size_wh`` with the faces' own transforms (output -> crop) and feathered masks, in the
    order given (a later face over an earlier one, as the faces are pasted); coverage is the
    faces' share of each output pixel (0 where no face was pasted, where the map is 0).
    Where faces overlap, the map is each face's own value weighted by its share."""
    w, h = size_wh
    acc = np.zeros((h, w, 2), np.float32)  # (weighted map, coverage), blended as the colours are
    for u, m in zip(maps, to_crop):
        paste(acc, np.stack([np.asarray(u, np.float32), np.ones_like(u, np.float32)], axis=-1), m)
    value, cover = acc[..., 0], acc[..., 1]
    out = np.zeros((h, w), np.float32)
    np.divide(value, cover, out=out, where=cover > 1e-6)
    return np.clip(out, 0, None), np.clip(cover, 0, 1)


def restore(photo: Image.Image, face_model: Upscaler, *, scale: Scale | None = None,
            size: tuple[int, int] | None = None, detector: Detector | None = None,
            faces: list[Face] | None = None, background: Upscaler | None = None,
            faces_only: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
            chunk_size: int | None = None, uncertainty: bool = False) -> RestoreResult:
    """Up-scale ``photo`` to ``scale`` (s, or (sx, sy) width first) or ``size`` (w, h), faces
    by ``face_model``.

    ``faces`` skips detection (landmarks given); otherwise ``detector`` finds them.
    ``uncertainty``: each face's uncertainty map (``upscale(..., uncertainty=True)``), and
    the maps pasted like the faces (``result.uncertainty``, ``result.coverage``).
    """
    rgb = photo.convert("RGB")
    w, h = rgb.size
    out_w, out_h = output_size((w, h), scale, size, max_pixels)
    arr = np.asarray(rgb)
    if faces is None:
        if detector is None:
            raise InputError("restore needs a face detector or the faces' landmarks")
        faces = detector.detect(arr)
    sx, sy = out_w / w, out_h / h
    from_output = np.array([[1 / sx, 0.0, 0.0], [0.0, 1 / sy, 0.0]])
    zoom = float(np.sqrt(sx * sy))
    bicubic = load_model("bicubic")
    restored: list[RestoredFace] = []
    # Small faces first: a larger (nearer) face that overlaps one is pasted over it.
    for face in sorted(faces, key=lambda f: f.eye_distance):
        n_in = face.crop_side or natural_size(face.landmarks)
        n_out = max(1, round(n_in * zoom))
        if face.to_crop is None:
            to_crop, lr = aligned_crop(arr, face.landmarks, n_in)
        else:
            to_crop, lr = face.to_crop, crop(arr, face.to_crop, n_in)
        sr = face_model.upscale(lr, size=(n_out, n_out), chunk_size=chunk_size, max_pixels=None,
                                uncertainty=uncertainty)
        sr, umap = sr if uncertainty else (sr, None)
        ref = bicubic.upscale(lr, size=(n_out, n_out), max_pixels=None)
        sr = _match_colour(sr.astype(np.float32), ref, feather_mask(n_out)).round().astype(np.uint8)
        to_crop_out = compose(np.array([[n_out / n_in, 0, 0], [0, n_out / n_in, 0]]),
                              compose(to_crop, from_output))
        restored.append(RestoredFace(face, to_crop, n_in, to_crop_out, n_out, sr, umap))
    if faces_only:
        return RestoreResult(None, restored, (out_w, out_h))
    # Each stage's freed memory goes back before the next allocates the whole output.
    release_freed_memory()
    base = (background or bicubic).upscale(rgb, size=(out_w, out_h), max_pixels=max_pixels, chunk_size=chunk_size)
    release_freed_memory()
    canvas = np.asarray(base, dtype=np.float32).copy()
    for rf in restored:
        mask = None if rf.face.blend >= 1 else feather_mask(rf.crop_out) * np.float32(rf.face.blend)
        paste(canvas, rf.crop.astype(np.float32), rf.to_crop_out, mask)
    out = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8))
    maps = (paste_face_maps((out_w, out_h), [rf.uncertainty for rf in restored],
                            [rf.to_crop_out for rf in restored]) if uncertainty else (None, None))
    return RestoreResult(carry_metadata(photo, out), restored, (out_w, out_h), *maps)  # ICC profile, EXIF


def side_by_side_picture(photo: Image.Image, result: RestoreResult,
                         box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Input (nearest-neighbour enlarged), plain bicubic up-scale and restored photo, left to
    right at the output's resolution; ``box`` (in output pixels) crops all three alike."""
    from ..demo import side_by_side

    out_w, out_h = result.size
    rgb = photo.convert("RGB")
    columns = [("input", rgb.resize((out_w, out_h), Image.NEAREST)),
               ("bicubic", load_model("bicubic").upscale(rgb, size=(out_w, out_h), max_pixels=None)),
               (f"restored ({len(result.faces)} face{'s' * (len(result.faces) != 1)})", result.image)]
    if box is not None:
        columns = [(label, im.crop(box)) for label, im in columns]
    return side_by_side(columns, height=columns[0][1].height)
