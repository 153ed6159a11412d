"""Reading and writing images safely: every odd input becomes 8-bit RGB (and we say so),
EXIF orientation is applied, and outputs are written to a temporary file then renamed,
so a failure never leaves half an image behind and never touches the input.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM"}


def to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """8-bit RGB version of ``img`` and a note saying what was converted (None if nothing)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode != "F" and arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([arr] * 3, axis=-1)), f"converted {mode} (high bit depth grayscale) to 8-bit RGB"
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "P with transparency"
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        out = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
        return out, f"converted {mode} to RGB (transparent areas made white)"
    return img.convert("RGB"), f"converted {mode} to RGB"


def read_image(path: str | Path) -> tuple[Image.Image, list[str]]:
    """Open an image file as RGB with EXIF orientation applied; notes of what changed."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                oriented = ImageOps.exif_transpose(img)
                if oriented is not img and img.getexif().get(0x0112, 1) != 1:
                    notes.append("applied EXIF orientation")
                rgb, note = to_rgb(oriented)
                rgb.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image too large to open safely") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    if note:
        notes.append(note)
    return rgb, notes


def write_image(img: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Save ``img`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown output format; use one of {', '.join(sorted(SAVE_FORMATS))}")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{parent}: output folder does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise InputError(f"{parent}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
