"""The web app's work, without Gradio: read an upload, size the output, run the public API.

Every function takes what one request sent and returns what that request gets back; the
only thing shared between requests is a read-only cache of loaded models (and the face
detector), so two users never see each other's results. Problems with the input are
:class:`~arasfsr.errors.InputError` with a one-line message for the page.

Sizes are computed here, as (width, height), by the API's ``output_size`` from the user's
scale (one factor, or SX and SY with the width first) or exact size, and the API is always
called with ``size=(W, H)``.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..api import DEFAULT_MAX_PIXELS, Upscaler, load_model, output_size
from ..demo import side_by_side
from ..errors import InputError
from ..imageio import probe_image, read_image

BY_SCALE, BY_SIZE = "scale", "exact size"
# Outputs this large are refused in the page, as the CLI's default --max-pixels does, and so
# are uploads (read from the file's header, before any pixel is decoded): a 24 KB PNG can
# claim 5000x5000 pixels, 800 MB once decoded and converted.
MAX_PIXELS = DEFAULT_MAX_PIXELS
MAX_INPUT_PIXELS = DEFAULT_MAX_PIXELS
MAX_COMPARED = 6  # models in one comparison (each output is held until the picture is made)

GRID_MIN_HEIGHT = 256  # small outputs are enlarged (nearest) in the comparison picture, for their labels
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    pass


class ModelCache:
    """Loaded models by name, each loaded once and then only read (inference), behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, Upscaler] = {}
        self._detector = None

    def model(self, name: str) -> Upscaler:
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name)
            return self._models[name]

    def detector(self):
        from ..faces.detect import load_detector

        with self._lock:
            if self._detector is None:
                self._detector = load_detector()
            return self._detector


def read_upload(path: str | Path | None, what: str = "image") -> tuple[Image.Image, list[str]]:
    """The uploaded file as RGB (the CLI's reader: damaged, truncated and oversized files refused)."""
    if path is None or str(path) == "":
        raise InputError(f"no {what}: drop an image file first")
    path = Path(path)
    try:
        (w, h), _ = probe_image(path)
        if w * h > MAX_INPUT_PIXELS:
            raise InputError(f"{path}: {w}x{h} is {w * h:,} pixels, above this app's limit of {MAX_INPUT_PIXELS:,} "
                             f"for an upload (4096x4096); shrink or crop it first")
        return read_image(path)
    except InputError as exc:  # name the file as the user knows it, not by the server's temp path
        raise InputError(str(exc).replace(str(path), path.name)) from None


def parse_scale(text: str) -> tuple[float, float]:
    """``"3.5"`` -> (3.5, 3.5); ``"2x3"`` -> (2, 3): width factor SX first, then height SY."""
    parts = re.split(r"\s*[x×,]\s*", str(text).strip().lower())
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(f"scale {text!r}: give a positive factor such as 3.5, "
                         "or one per axis, width first, such as 2x3")
    return (values[0], values[-1])


def target_size(in_wh: tuple[int, int], mode: str, scale: str = "", width: float | None = None,
                height: float | None = None, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The output (width, height) asked for (sized by the API's :func:`~arasfsr.api.output_size`),
    checked against the pixel limit."""
    if mode == BY_SIZE:
        # The page's number boxes give floats: 7.0 is 7, 7.5 is refused.
        if width is None or height is None or not all(float(v).is_integer() and v >= 1 for v in (width, height)):
            raise InputError(f"size {width}x{height}: width and height must be whole numbers of at least 1")
        out_w, out_h = output_size(in_wh, size=(int(width), int(height)), max_pixels=None)
    elif mode == BY_SCALE:
        out_w, out_h = output_size(in_wh, scale=parse_scale(scale), max_pixels=None)
    else:
        raise InputError(f"unknown size mode {mode!r}")
    if out_w * out_h > max_pixels:
        raise InputError(f"the output {out_w}x{out_h} has {out_w * out_h:,} pixels, above this app's limit of "
                         f"{max_pixels:,} (4096x4096); ask for a smaller scale or size")
    return out_w, out_h


def new_workdir(root: Path, keep_s: float = 3600) -> Path:
    """A fresh folder for one request's downloads; folders older than ``keep_s`` are removed."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        try:
            if time.time() - old.stat().st_mtime > keep_s:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # removed by a request running beside this one
            pass
    return Path(tempfile.mkdtemp(dir=root))


def save_png(img: Image.Image, path: Path) -> Path:
    img.save(path, format="PNG")
    return path


def _safe_stem(path: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:60] or "image"


@dataclass
class UpscaleResult:
    input_enlarged: Image.Image  # the input, nearest-neighbour, at the output size
    bicubic: Image.Image
    result: Image.Image
    info: str
    png: Path


def upscale_face(cache: ModelCache, path: str | Path, model_name: str, mode: str, scale: str,
                 width: float | None, height: float | None, workdir: Path,
                 progress: Progress = _no_progress) -> UpscaleResult:
    progress(0.0, "reading the image")
    img, notes = read_upload(path)
    out_w, out_h = target_size(img.size, mode, scale, width, height)
    progress(0.2, f"loading {model_name}")
    model = cache.model(model_name)
    progress(0.4, f"{model_name}: {img.width}x{img.height} to {out_w}x{out_h}")
    start = time.perf_counter()
    result = model.upscale(img, size=(out_w, out_h), max_pixels=MAX_PIXELS)
    seconds = time.perf_counter() - start
    bicubic = cache.model("bicubic").upscale(img, size=(out_w, out_h), max_pixels=MAX_PIXELS)
    png = save_png(result, workdir / f"{_safe_stem(path)}_{out_w}x{out_h}_{_safe_stem(model_name)}.png")
    info = (f"**{out_w}×{out_h}** from {img.width}×{img.height} (×{out_w / img.width:.3g} wide, "
            f"×{out_h / img.height:.3g} high) with `{model_name}` in {seconds:.2f} s")
    info += "".join(f"  \nnote: {n}" for n in notes)
    return UpscaleResult(img.resize((out_w, out_h), Image.NEAREST), bicubic, result, info, png)


@dataclass
class RestorePhotoResult:
    detected: Image.Image  # the input with a box on each face found
    restored: Image.Image
    compare: Image.Image
    crops: list[Image.Image]
    info: str
    zip: Path


def draw_boxes(img: Image.Image, boxes: list[np.ndarray]) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    width = max(1, round(min(img.size) / 200))
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        draw.rectangle((x0, y0, x1, y1), outline=(0, 255, 0), width=width)
        draw.text((x0 + 2, y0 + 1), str(k), fill=(0, 255, 0))
    return out


def restore_photo(cache: ModelCache, path: str | Path, model_name: str, mode: str, scale: str,
                  width: float | None, height: float | None, workdir: Path,
                  progress: Progress = _no_progress) -> RestorePhotoResult:
    from ..faces.restore import restore, side_by_side_picture

    progress(0.0, "reading the photo")
    img, notes = read_upload(path, "photo")
    out_w, out_h = target_size(img.size, mode, scale, width, height)
    progress(0.1, "finding faces")
    faces = cache.detector().detect(np.asarray(img))
    progress(0.3, f"restoring {len(faces)} face{'s' * (len(faces) != 1)} with {model_name}")
    start = time.perf_counter()
    res = restore(img, cache.model(model_name), size=(out_w, out_h), faces=faces, max_pixels=MAX_PIXELS)
    seconds = time.perf_counter() - start
    progress(0.8, "side-by-side picture and zip")
    # Crops in the order restore() returns them (smallest first), numbered like their boxes.
    detected = draw_boxes(img, [rf.face.box for rf in res.faces])
    compare = side_by_side_picture(img, res)
    crops = [Image.fromarray(rf.crop) for rf in res.faces]
    stem = _safe_stem(path)
    zip_path = workdir / f"{stem}_restored.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, im in [(f"{stem}_restored.png", res.image), (f"{stem}_compare.png", compare),
                         (f"{stem}_faces.png", detected)] + [(f"{stem}_face{k}.png", c) for k, c in enumerate(crops)]:
            z.writestr(name, _png_bytes(im))
        z.writestr(f"{stem}.json", json.dumps({"input": Path(path).name, "width": img.width, "height": img.height,
                                               "output": [out_w, out_h], "model": model_name,
                                               "faces": [rf.to_json() for rf in res.faces]}, indent=1))
    if faces:
        info = f"**{len(faces)} face{'s' * (len(faces) != 1)}** restored"
    else:
        info = ("**no face found**" if min(img.size) >= 12 else f"**{img.width}x{img.height} is too small to hold a face**"
                ) + "; the photo is up-scaled without face restoration"
    info += f", {img.width}×{img.height} to {out_w}×{out_h} with `{model_name}` in {seconds:.2f} s"
    info += "".join(f"  \nnote: {n}" for n in notes)
    return RestorePhotoResult(detected, res.image, compare, crops, info, zip_path)


def _png_bytes(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class CompareResult:
    grid: Image.Image
    outputs: list[tuple[Image.Image, str]]  # each model's output and its caption
    table: str  # Markdown
    png: Path


def compare_models(cache: ModelCache, path: str | Path, model_names: list[str], simulate: bool, shrink: float,
                   mode: str, scale: str, width: float | None, height: float | None, workdir: Path,
                   progress: Progress = _no_progress) -> CompareResult:
    from ..data.degrade import resize
    from ..evaluation.metrics import face_metrics

    model_names = list(dict.fromkeys(model_names))  # each model once, in the order chosen
    if not model_names:
        raise InputError("choose at least one model to compare")
    if len(model_names) > MAX_COMPARED:
        raise InputError(f"{len(model_names)} models chosen; compare at most {MAX_COMPARED} at a time")
    progress(0.0, "reading the image")
    img, _ = read_upload(path)
    reference = None
    if simulate:
        if not (shrink is not None and np.isfinite(shrink) and shrink > 1):
            raise InputError(f"shrink factor {shrink}: give a number above 1, such as 4")
        lr_w, lr_h = round(img.width / shrink), round(img.height / shrink)
        if min(lr_w, lr_h) < 1:
            raise InputError(f"shrinking {img.width}x{img.height} by {shrink:g} leaves nothing; use a smaller factor")
        reference, lr = img, resize(img, (lr_w, lr_h))
        out_w, out_h = target_size(img.size, BY_SIZE, width=img.width, height=img.height)
    else:
        lr = img
        out_w, out_h = target_size(img.size, mode, scale, width, height)
    outputs, rows = [], []
    for k, name in enumerate(model_names):
        progress(0.05 + 0.9 * k / len(model_names), f"{name} ({k + 1} of {len(model_names)})")
        start = time.perf_counter()
        out = cache.model(name).upscale(lr, size=(out_w, out_h), max_pixels=MAX_PIXELS)
        seconds = time.perf_counter() - start
        caption, row = name, f"| `{name}` | {seconds:.2f} |"
        if reference is not None:
            m = face_metrics(np.asarray(out), np.asarray(reference))
            caption += f"  {m['psnr']:.2f} dB"
            row += f" {m['psnr']:.2f} | {m['ssim']:.4f} |"
        outputs.append((out, caption))
        rows.append(row)
    columns = [(f"input {lr.width}x{lr.height}", lr)] + [(c, o) for o, c in outputs]
    if reference is not None:
        columns.append(("reference", reference))
    grid = side_by_side(columns, height=max(out_h, GRID_MIN_HEIGHT))
    header = "| model | seconds |" + (" PSNR (dB) | SSIM |" if reference is not None else "")
    rule = "|---|---|" + ("---|---|" if reference is not None else "")
    table = "\n".join([f"{lr.width}×{lr.height} to {out_w}×{out_h}"
                       + (f" (the upload shrunk by {shrink:g}; PSNR and SSIM on Y against the upload)"
                          if reference is not None else ""), "", header, rule, *rows])
    png = save_png(grid, workdir / f"{_safe_stem(path)}_compare_{out_w}x{out_h}.png")
    return CompareResult(grid, outputs, table, png)
