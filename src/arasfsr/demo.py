"""``arasfsr demo``: the main job on an image that ships with scikit-image.

Takes the face of the public-domain astronaut portrait (``skimage.data.astronaut()``,
Eileen Collins, NASA), shrinks it to 48x48, super-resolves it at x2, x3.5 and x8 and
writes the results and a side-by-side picture (input, bicubic, model).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from .api import Upscaler, load_model
from .imageio import make_output_dir, write_image

# Face box in the 512x512 astronaut image (left, top, right, bottom): eyebrows to chin.
FACE_BOX = (168, 48, 288, 168)
LR_SIZE = 48
SCALES = (2.0, 3.5, 8.0)
LABEL_FRACTION = 40  # label text height: a 40th of the pictures' height


def astronaut_face() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).crop(FACE_BOX)


def side_by_side(columns: list[tuple[str, Image.Image]], height: int) -> Image.Image:
    """Images scaled (nearest) to one height, labelled, left to right. The labels grow with
    the pictures (a 40th of their height), so that they stay readable on a photo thousands
    of pixels wide; small pictures keep Pillow's 11-px default font."""
    from PIL import ImageFont

    tiles = [(label, im.resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST))
             for label, im in columns]
    size = round(height / LABEL_FRACTION)
    font = ImageFont.load_default(size=size) if size > 11 else None
    pad, label_h = max(8, size // 2), max(18, round(size * 1.5))
    width = sum(t.width for _, t in tiles) + pad * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, height + label_h + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for label, tile in tiles:
        canvas.paste(tile, (x, pad + label_h))
        draw.text((x, pad), label, fill="black", font=font)
        x += tile.width + pad
    return canvas


def run_demo(out_dir: str | Path, model: str | Upscaler = "arasfsr", device: str = "cpu",
             chunk_size: int | None = None) -> list[Path]:
    """Write input.png, NAME_xS.png for each scale and side_by_side.png into ``out_dir``;
    ``chunk_size`` is for a model given by name (an Upscaler brings its own settings)."""
    sr_model = model if isinstance(model, Upscaler) else load_model(model, device=device, chunk_size=chunk_size)
    bicubic = load_model("bicubic")
    out_dir = Path(out_dir)
    make_output_dir(out_dir)  # only once the models load, so a failed demo leaves nothing behind
    face = astronaut_face()
    lr = face.resize((LR_SIZE, LR_SIZE), Image.BICUBIC, reducing_gap=None)
    written = [write_image(lr, out_dir / "input.png", overwrite=True)]
    columns: list[tuple[str, Image.Image]] = [("input", lr)]
    for s in SCALES:
        out = sr_model.upscale(lr, scale=s)
        written.append(write_image(out, out_dir / f"{sr_model.name}_x{s:g}.png", overwrite=True))
        if s == SCALES[-1]:
            columns += [(f"bicubic x{s:g}", bicubic.upscale(lr, scale=s)), (f"{sr_model.name} x{s:g}", out)]
    columns.append(("reference", face))
    picture = side_by_side(columns, height=LR_SIZE * int(SCALES[-1]))
    written.append(write_image(picture, out_dir / "side_by_side.png", overwrite=True))
    return written
