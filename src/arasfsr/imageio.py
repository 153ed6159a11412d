"""Reading and writing images safely: every odd input becomes 8-bit RGB (and we say so),
EXIF orientation is applied, damaged files are refused, and outputs are written to a
temporary file then renamed, so a failure never leaves half an image behind and never
touches the input.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .atomic import TempFileError, atomic_write
from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM"}
_PNG_END = b"IEND\xaeB`\x82"


def image_files(folder: str | Path, skip_hidden: bool = False) -> list[Path]:
    """The files directly inside ``folder`` with an image suffix, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not (skip_hidden and p.name.startswith(".")))


def to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """8-bit RGB version of ``img`` and a note saying what was converted (None if nothing)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        # I;16 is 16-bit by definition; I and F carry no depth, so guess from the values.
        top = 65535.0 if mode.startswith("I;16") or (mode != "F" and arr.max() > 255) else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([arr] * 3, axis=-1)), f"converted {mode} (high bit depth grayscale) to 8-bit RGB"
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "P with transparency"
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        out = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
        return out, f"converted {mode} to RGB (transparent areas made white)"
    return img.convert("RGB"), f"converted {mode} to RGB"


def read_image(path: str | Path) -> tuple[Image.Image, list[str]]:
    """Open an image file as RGB with EXIF orientation applied; notes of what changed.

    Raises :class:`InputError` for a missing, non-image, truncated or oversized file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    notes: list[str] = []
    # Another library may have switched this on globally; a truncated file must fail here.
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format == "PNG":
                    _check_png_end(path)
                if any(";16" in str(t.args) for t in getattr(img, "tile", None) or []) and img.mode == "RGB":
                    notes.append("reduced 16-bit channels to 8-bit")
                if getattr(img, "n_frames", 1) > 1:
                    notes.append(f"used the first of its {img.n_frames} frames")
                img.load()
                rgb, orient_note = _orient(img)
                rgb, note = to_rgb(rgb)
                if rgb is img:  # closing the file would free its pixels
                    rgb = img.copy()
        notes += [f"Pillow warned: {str(w.message).splitlines()[0]}" for w in caught]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image has too many pixels to open safely "
                         f"(more than {Image.MAX_IMAGE_PIXELS:,})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot read image, it is damaged or truncated ({one_line(exc)})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    notes += [n for n in (orient_note, note) if n]
    return rgb, notes


def _orient(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Apply the EXIF orientation tag (as viewers do); a broken tag is ignored, with a note."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # Pillow raises assorted errors on corrupt EXIF blocks
        return img, "ignored unreadable EXIF data"
    if orientation in (None, 1):
        return img, None
    if orientation not in range(2, 9):
        return img, f"ignored invalid EXIF orientation {orientation!r}"
    try:
        return ImageOps.exif_transpose(img), f"applied EXIF orientation {orientation}"
    except Exception:
        return img, "ignored unreadable EXIF data"


def _check_png_end(path: Path) -> None:
    # Pillow decodes a PNG that lost only its last bytes without complaint; a whole file ends in IEND.
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        if _PNG_END not in f.read():
            raise OSError("PNG without its end chunk")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_output_path(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise InputError(f"{path}: unknown output format; use one of {', '.join(sorted(SAVE_FORMATS))}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    refuse_existing(path, overwrite)
    return path


def refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; pass --overwrite to replace it")


def check_output_dir(path: str | Path) -> Path:
    """Refuse an output folder that is a file, or lies under one."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise InputError(f"{p}: is a file, not a folder; cannot write into {path}")
            break
    return path


def make_folder(folder: Path) -> None:
    """Create an output folder (and its parents), or say plainly why it cannot be."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create output folder ({exc.strerror})") from None


def make_output_dir(path: str | Path) -> list[Path]:
    """Create ``path`` (and parents) and check a file can be written there.

    Returns the folders it created, so a run that writes nothing can remove them.
    """
    path = check_output_dir(path)
    created = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".arasfsr-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        remove_empty_dirs(created)
        raise InputError(f"{path}: cannot write into this folder ({exc.strerror or one_line(exc)})") from None
    return created


def remove_empty_dirs(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            pass


def write_image(img: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Save ``img`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = check_output_path(path, overwrite)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "output folder does not exist"
        raise InputError(f"{parent}: {what}")
    opts = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            img.save(f, format=fmt, **opts)

    try:
        atomic_write(path, save)
    except TempFileError as exc:
        raise InputError(f"{parent}: cannot write into this folder ({exc.strerror or one_line(exc)})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or one_line(exc)})") from None
    return path

