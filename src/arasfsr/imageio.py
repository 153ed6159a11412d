"""Reading and writing images safely.

Every input becomes 8-bit grayscale (L), grayscale with alpha (LA), RGB or RGBA, or 8-bit
RGB for code that needs colour (training, faces), and we say what was converted. The EXIF
orientation is applied; the ICC colour profile and EXIF ride along in ``img.info`` and are
written into outputs that can hold them. Damaged files are refused, and outputs are
written to a temporary file then renamed, so a failure never leaves half an image behind
and never touches the input.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from .atomic import TempFileError, atomic_write
from .errors import InputError, OutputExists, one_line

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM"}
# Transparency is laid on white: JPEG and PPM have none, BMP's is ignored by most readers (Pillow's too).
NO_ALPHA_FORMATS = {"BMP", "JPEG", "PPM"}
METADATA_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}  # can hold an ICC profile and EXIF
_HIGH_DEPTH_GRAY = ("I;16", "I;16B", "I;16L", "I", "F")
_ICC_SPACE = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}
_ORIENTATION, _EXIF_IFD, _PIXEL_X, _PIXEL_Y = 0x0112, 0x8769, 0xA002, 0xA003
# Tags that describe a TIFF file's own layout: stale in any other file.
_TIFF_LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 338, 339,
                     347, 34675}
_PNG_END = b"IEND\xaeB`\x82"


def image_files(folder: str | Path, skip_hidden: bool = False) -> list[Path]:
    """The files directly inside ``folder`` with an image suffix, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not (skip_hidden and p.name.startswith(".")))


def normalise_mode(img: Image.Image) -> tuple[Image.Image, str | None]:
    """``img`` as 8-bit L, LA, RGB or RGBA, keeping grayscale and transparency, and a note
    saying what was converted (None if nothing)."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:  # a transparent colour (PNG tRNS)
        return img.convert(mode + "A"), f"converted {mode} with a transparent colour to {mode}A"
    if mode in _ICC_SPACE:
        return img, None
    if mode in _HIGH_DEPTH_GRAY:
        return _gray_to_8bit(img)
    if mode == "1":
        return img.convert("L"), "converted 1 (black and white) to 8-bit grayscale"
    if mode == "La":
        return img.convert("LA"), None
    if mode == "P":
        colour = img.convert("RGBA" if "transparency" in img.info else "RGB")
        arr = np.asarray(colour)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
            gray = colour.convert("LA" if colour.mode == "RGBA" else "L")
            return gray, f"converted P (grayscale palette) to {gray.mode}"
        return colour, f"converted P (palette) to {colour.mode}"
    if mode in ("PA", "RGBa", "RGBX"):
        return img.convert("RGBA"), (None if mode == "RGBa" else f"converted {mode} to RGBA")
    return img.convert("RGB"), f"converted {mode} to RGB"


def _gray_to_8bit(img: Image.Image) -> tuple[Image.Image, str]:
    """A 16-bit, 32-bit integer or floating-point grayscale image as 8-bit L, by its range.

    I;16 is 16-bit by definition. I and F carry no depth, so their values say which: F in
    0..1 is the usual floating-point range (0..255 there would be near-black), F in
    0..255 is 8-bit values, I up to 255 or 65535 is 8- or 16-bit; anything wider is
    stretched from min(0, lowest) to its highest value. NaN and infinities are refused:
    no grey level stands for a missing value.
    """
    mode = img.mode
    arr = np.asarray(img).astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        them = "it" if bad == 1 else "them"
        raise InputError(f"{mode} image with {bad:,} NaN or infinite value{'s' * (bad != 1)}: no grey level "
                         f"stands for {them}; fill {them} (e.g. with 0) first")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    bottom, top = 0.0, 255.0
    if mode.startswith("I;16"):
        top, what = 65535.0, "16-bit grayscale"
    elif mode == "F" and lo >= 0 and hi <= 1:
        top, what = 1.0, "floating point, values 0..1"
    elif lo >= 0 and hi <= 255:
        what = "floating point, values 0..255" if mode == "F" else "32-bit integers, values 0..255"
    elif mode == "I" and lo >= 0 and hi <= 65535:
        top, what = 65535.0, "32-bit integers, values 0..65535 read as 16-bit"
    else:
        bottom, top = min(lo, 0.0), hi
        what = f"values {lo:g}..{hi:g}, stretched from {bottom:g}..{top:g}"
    gray = Image.fromarray(np.clip((arr - bottom) / (top - bottom) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    gray.info = dict(img.info)
    return gray, f"converted {mode} ({what}) to 8-bit grayscale"


def to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """8-bit RGB version of ``img`` and a note saying what was converted (None if nothing)."""
    mode = img.mode
    out, note = normalise_mode(img)
    if out.mode == "RGB":
        return out, note
    if out.mode in ("RGBA", "LA"):
        return composite_on_white(out).convert("RGB"), f"converted {mode} to RGB (transparent areas made white)"
    if mode in _HIGH_DEPTH_GRAY:  # the note says how the values were read
        return out.convert("RGB"), note.replace("8-bit grayscale", "8-bit RGB")
    return out.convert("RGB"), f"converted {mode} to 8-bit RGB"


def composite_on_white(img: Image.Image) -> Image.Image:
    """An LA or RGBA image laid over white: L or RGB, with ``img.info`` kept."""
    base = Image.new(img.mode, img.size, (255, 255) if img.mode == "LA" else (255, 255, 255, 255))
    out = Image.alpha_composite(base, img).convert(img.mode[:-1])
    out.info = dict(img.info)
    return out


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """An L/LA/RGB/RGBA image as its colour (L or RGB) and its alpha (L, or None)."""
    if img.mode in ("LA", "RGBA"):
        bands = img.split()
        return Image.merge(img.mode[:-1], bands[:-1]), bands[-1]
    return img, None


def resize_alpha(alpha: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The alpha channel at ``size = (w, h)``: bicubic, anti-aliased when shrinking.

    Measured against the model on the replicated alpha (docs/cli.md, "Grayscale,
    transparency and colour profiles"): as good on average, and free.
    """
    return alpha.resize(size, Image.BICUBIC)


def icc_fits(icc: bytes | None, mode: str) -> bool:
    """Whether an ICC profile describes images of ``mode`` (a CMYK or RGB profile on a
    grayscale output, say, would be wrong)."""
    return bool(icc) and len(icc) >= 20 and icc[16:20] == _ICC_SPACE.get(mode)


def carry_metadata(src: Image.Image, out: Image.Image) -> Image.Image:
    """Copy ``src``'s ICC profile (where it fits ``out``'s mode) and EXIF into ``out.info``;
    the EXIF pixel dimensions are set to ``out``'s size. Returns ``out``."""
    icc = src.info.get("icc_profile")
    if icc_fits(icc, out.mode):
        out.info["icc_profile"] = icc
    exif = src.info.get("exif")
    if exif:
        try:
            tags = Image.Exif()
            tags.load(exif)
            sub = tags.get_ifd(_EXIF_IFD)
            for tag, value in ((_PIXEL_X, out.width), (_PIXEL_Y, out.height)):
                if tag in sub:
                    sub[tag] = value
            out.info["exif"] = tags.tobytes()  # never holds IFD1, where a (stale) thumbnail lives
        except Exception:  # Pillow raises assorted errors on odd EXIF: drop it rather than fail
            pass
    return out


def _read_metadata(img: Image.Image) -> dict:
    """The ICC profile and EXIF of a freshly opened image, the EXIF ready for an output whose
    orientation has been applied (orientation 1, no thumbnail, no TIFF layout tags)."""
    meta = {}
    if img.info.get("icc_profile"):
        meta["icc_profile"] = img.info["icc_profile"]
    try:
        exif = Image.Exif()  # a copy: img.getexif() is the image's own, read again by _orient
        exif.load(img.getexif().tobytes())
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        for tag in _TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
        if len(exif):
            meta["exif"] = exif.tobytes()
    except Exception:  # unreadable EXIF is dropped (read_image notes it when orienting)
        pass
    return meta


def output_notes(img: Image.Image, path: str | Path) -> list[str]:
    """What ``upscale`` and ``write_image`` will do with ``img`` (L, LA, RGB or RGBA) written
    to ``path``, for a user to read."""
    fmt = SAVE_FORMATS.get(Path(path).suffix.lower())
    notes = []
    if img.mode in ("L", "LA"):
        written = ("written as RGB with equal channels (WEBP has no grayscale)" if fmt == "WEBP"
                   else "written as grayscale")
        notes.append(f"grayscale: super-resolved on its luminance, {written}")
    if img.mode in ("LA", "RGBA"):
        if fmt in NO_ALPHA_FORMATS:
            notes.append(f"{fmt} cannot hold transparency: transparent areas made white")
        else:
            notes.append("transparency kept: colour super-resolved, alpha channel resized (bicubic) apart")
    written = _fit_format(Image.new(img.mode, (1, 1)), fmt).mode if fmt else img.mode
    icc = img.info.get("icc_profile")
    if icc and not icc_fits(icc, written):
        space = icc[16:20].decode("latin-1").strip() or "unknown"
        notes.append(f"its {space} colour profile does not describe the {written} output: dropped")
    held = [what for key, what in (("icc_profile", "colour profile"), ("exif", "EXIF"))
            if img.info.get(key) and (key != "icc_profile" or icc_fits(icc, written))]
    if held and fmt not in METADATA_FORMATS:
        notes.append(f"{fmt} cannot hold its {' and '.join(held)}: dropped")
    return notes


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) with each fully transparent pixel given the colour of the nearest
    visible ones (pull-push: alpha-weighted means over ever coarser blocks).

    Whatever colour hides under full transparency (often black) would otherwise be mixed
    into the edges by the up-scaler and show as a dark or coloured fringe.
    """
    visible = alpha > 0
    if visible.all() or not visible.any():
        return rgb
    weight = alpha.astype(np.float32)[..., None]
    levels = [(rgb.astype(np.float32) * weight, weight)]
    while max(levels[-1][1].shape[:2]) > 1:
        levels.append(tuple(_sum_pool(x) for x in levels[-1]))
    fill = None
    for colour_sum, weight_sum in reversed(levels):
        mean = colour_sum / np.maximum(weight_sum, 1e-12)
        if fill is not None:
            up = fill.repeat(2, 0).repeat(2, 1)[:mean.shape[0], :mean.shape[1]]
            mean = np.where(weight_sum > 0, mean, up)
        fill = mean
    return np.where(visible[..., None], rgb, np.clip(fill + 0.5, 0, 255).astype(np.uint8))


def _sum_pool(x: np.ndarray) -> np.ndarray:
    """Sums over 2x2 blocks (an odd side is padded with zeros)."""
    h, w = x.shape[:2]
    x = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)))
    return x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, x.shape[2]).sum((1, 3))


def input_path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be opened at all (missing, a symbolic link loop, a broken link),
    or None when something is there."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)}, which does not exist)"
        return "no such file or folder"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link points, in the end, back to itself)"
        return f"cannot open ({exc.strerror or one_line(exc)})"
    return None


def check_input_file(path: str | Path, what: str = "an image") -> Path:
    """``path`` if it is a regular file that exists; else an InputError saying what it is."""
    path = Path(path)
    problem = input_path_problem(path)
    if problem:
        raise InputError(f"{path}: {problem}")
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not {what}")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file")
    return path


def read_image(path: str | Path, rgb: bool = True) -> tuple[Image.Image, list[str]]:
    """Open an image file with EXIF orientation applied; notes of what changed.

    ``rgb=True`` gives 8-bit RGB (transparency laid on white); ``rgb=False`` keeps
    grayscale and transparency: 8-bit L, LA, RGB or RGBA. Either way ``img.info`` holds the
    file's ICC profile and EXIF (orientation reset to 1), for :func:`carry_metadata`.
    Raises :class:`InputError` for a missing, non-image, truncated or oversized file.
    """
    notes: list[str] = []
    with _opened(path) as (img, caught):
        if any(";16" in str(t.args) for t in getattr(img, "tile", None) or []) and img.mode in ("RGB", "RGBA"):
            notes.append("reduced 16-bit channels to 8-bit")
        if getattr(img, "n_frames", 1) > 1:
            notes.append(f"used the first of its {img.n_frames} frames")
        img.load()
        meta = _read_metadata(img)
        out, orient_note = _orient(img)
        try:
            out, note = (to_rgb if rgb else normalise_mode)(out)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        if out is img:  # closing the file would free its pixels
            out = img.copy()
        out.info = meta
    notes += [f"Pillow warned: {str(w.message).splitlines()[0]}" for w in caught]
    notes += [n for n in (orient_note, note) if n]
    return out, notes


def probe_image(path: str | Path) -> tuple[tuple[int, int], str]:
    """``((width, height), mode)`` of an image file from its header alone, nothing decoded:
    the size that :func:`read_image` will return (EXIF orientation applied) and the file's
    own mode. Refuses what read_image refuses without decoding (missing, not an image,
    too many pixels, a PNG cut short); a file damaged further in fails only in read_image.
    """
    with _opened(path) as (img, _):
        try:
            turned = img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn swaps the sides
        except Exception:  # read_image ignores unreadable EXIF too
            turned = False
        return (img.height, img.width) if turned else img.size, img.mode


@contextmanager
def _opened(path: str | Path) -> Iterator[tuple[Image.Image, list[warnings.WarningMessage]]]:
    """The opened image file (not yet decoded) and the list that collects Pillow's warnings;
    every way the file can be unreadable, here or in the block, becomes an InputError."""
    path = check_input_file(path)
    # Another library may have switched this on globally; a truncated file must fail here.
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format == "PNG":
                    _check_png_end(path)
                yield img, caught
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image has too many pixels to open safely "
                         f"(more than {Image.MAX_IMAGE_PIXELS:,})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read this file: permission denied") from None
    except OSError as exc:
        if exc.errno is not None:  # the system's (an I/O error, a file that went away), not the image's
            raise InputError(f"{path}: cannot read this file ({exc.strerror or one_line(exc)})") from None
        raise InputError(f"{path}: cannot read image, it is damaged or truncated ({one_line(exc)})") from None
    except ValueError as exc:
        if "MAX_TEXT" in str(exc):  # Pillow's guard against decompression bombs in PNG metadata
            raise InputError(f"{path}: its PNG metadata (text chunks or colour profile) is larger than Pillow's "
                             f"safety limit ({PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MiB a chunk, "
                             f"{PngImagePlugin.MAX_TEXT_MEMORY // 2**20} MiB in all); the image is not read. "
                             "Save it again without that metadata") from None
        raise InputError(f"{path}: cannot read image, it is damaged or truncated ({one_line(exc)})") from None
    except (SyntaxError, EOFError) as exc:
        raise InputError(f"{path}: cannot read image, it is damaged or truncated ({one_line(exc)})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


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


def check_output_path(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name (e.g. {path / 'out.png'}) or use --out-dir")
    if path.suffix.lower() not in SAVE_FORMATS:
        raise InputError(f"{path}: unknown output format; use one of {', '.join(sorted(SAVE_FORMATS))}")
    check_output_name(path)
    refuse_existing(path, overwrite)
    return path


def check_output_name(path: str | Path) -> Path:
    """Refuse an output whose name (or whole path) is longer than its file system takes,
    before any work: otherwise the write fails only once the model has run."""
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    name_max, path_max = _limit(folder, "PC_NAME_MAX", 255), _limit(folder, "PC_PATH_MAX", 4096)
    name = len(os.fsencode(path.name))
    if name > name_max:
        raise InputError(f"{path}: the file name is {name} bytes long, above this file system's limit of "
                         f"{name_max}; use a shorter input name or output name")
    if len(os.fsencode(str(path.absolute()))) >= path_max:
        raise InputError(f"{path}: the path is longer than this file system's limit of {path_max} bytes")
    return path


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError, AttributeError):  # Windows has no pathconf
        return default


def refuse_existing(path: Path, overwrite: bool) -> None:
    if os.path.lexists(path) and not overwrite:  # a broken link is there too
        raise OutputExists(path)


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
    """Save ``img`` to ``path`` atomically (temporary file in the same folder, then rename).

    Its ICC profile and EXIF (``img.info``) go into PNG, JPEG, WEBP and TIFF files; a
    format without (dependable) transparency, BMP, JPEG or PPM, gets it laid on white.
    """
    path = check_output_path(path, overwrite)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "output folder does not exist"
        raise InputError(f"{parent}: {what}")
    img = _fit_format(img, fmt)
    opts = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt in METADATA_FORMATS:
        if icc_fits(img.info.get("icc_profile"), img.mode):
            opts["icc_profile"] = img.info["icc_profile"]
        exif = img.info.get("exif")
        if exif and not (fmt == "JPEG" and len(exif) > 65533):  # JPEG's limit: one APP1 segment
            opts["exif"] = exif

    return write_file(path, lambda f: img.save(f, format=fmt, **opts), replace=overwrite)


def write_file(path: Path, fill: Callable[[BinaryIO], object], replace: bool = True) -> Path:
    """Write ``path`` atomically by ``fill(open binary file)``; a failure is an InputError
    naming the file or its folder (a full disk, a folder that cannot be written).
    ``replace=False``: :class:`~arasfsr.errors.OutputExists` if a file is there by the time
    it is written (another process may have written it since the run was planned)."""

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            fill(f)

    try:
        atomic_write(path, save, replace=replace)
    except FileExistsError:
        raise OutputExists(path) from None
    except TempFileError as exc:
        raise InputError(f"{path.parent}: cannot write into this folder ({exc.strerror or one_line(exc)})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or one_line(exc)})") from None
    return path


def _fit_format(img: Image.Image, fmt: str) -> Image.Image:
    """``img`` in a mode ``fmt`` can hold: no alpha in BMP/JPEG/PPM, no L or LA in WEBP."""
    if fmt in NO_ALPHA_FORMATS and img.mode in ("LA", "RGBA"):
        return composite_on_white(img)
    if (fmt, img.mode) == ("WEBP", "LA"):
        return img.convert("RGBA")
    if (fmt, img.mode) == ("WEBP", "L"):  # so that a grayscale profile is not written on RGB
        return img.convert("RGB")
    return img
