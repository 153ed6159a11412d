"""The docs' real-world figure: realworld/ faces at their real size x4, input beside each model.

    python -m tools.realworld_figure --out docs/img/realworld.png

The ``realworld/`` faces are 512x512 up-scalings of low-quality photos. Each face is
reduced (bicubic) to ``--lr`` px (default 64) and up-scaled x4 by bicubic and each model;
the figure shows them at 100 % (the input enlarged by nearest neighbour to the same size).

Per face it also reports:

- its real size: the smallest side of (32, 48, 64, 96, 128, 192, 256) to which the 512 px
  picture can be reduced and brought back (bicubic both ways) at 45 dB PSNR on luma or
  more (">256" when none can);
- its blotch score: what the default model (``arasfsr``) invents where the input shows
  nothing, the mean |SR - bicubic| on luma (grey levels) over the flatter half of the face
  (pixels whose gradient on the smoothed bicubic up-scaling is at most the face's median);
  the table on stdout gives every model's score, the hardest faces are the default's.

The rows are the three faces of the highest blotch score (the hardest) and ``--others`` more,
evenly spaced over the rest of the ranking. Columns: input, bicubic, then ``--models``
(default ``arasfsr`` and ``arasfsr-real`` where that model exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from arasfsr import load_model
from arasfsr.data import resolve_data_root
from arasfsr.errors import ArasfsrError
from arasfsr.imageio import image_files, read_image, write_image

LADDER = (32, 48, 64, 96, 128, 192, 256)
LOSSLESS_DB = 45.0
HARDEST = 3
SCALE = 4
LUMA = np.array([0.299, 0.587, 0.114])


def luma(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) @ LUMA


def real_size(img: Image.Image) -> int | None:
    """The smallest side of :data:`LADDER` that keeps the face (None: none does)."""
    full = luma(np.asarray(img))
    for side in LADDER:
        back = luma(np.asarray(img.resize((side, side), Image.BICUBIC).resize(img.size, Image.BICUBIC)))
        mse = np.mean((full - back) ** 2)
        if mse == 0 or 10 * np.log10(255**2 / mse) >= LOSSLESS_DB:
            return side
    return None


def blotch_score(sr: np.ndarray, bicubic: np.ndarray) -> float:
    """Mean |SR - bicubic| on luma over the flatter half of the face."""
    from scipy import ndimage

    b, s = luma(bicubic), luma(sr)
    smooth = ndimage.gaussian_filter(b, 2)
    grad = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    flat = grad <= np.median(grad)
    return float(np.abs(s - b)[flat].mean())


def reduced(img: Image.Image, lr: int) -> tuple[np.ndarray, np.ndarray]:
    """The face at ``lr`` px and its bicubic up-scaling x4: a model's input and reference."""
    small = np.asarray(img.resize((lr, lr), Image.BICUBIC))
    side = lr * SCALE
    return small, np.asarray(Image.fromarray(small).resize((side, side), Image.BICUBIC))


def mean_blotch(models: dict[str, object], files: list[Path], lr: int = 64) -> dict[str, float]:
    """Each model's blotch score averaged over the faces ``files`` (of ``realworld/``)
    reduced to ``lr`` px and up-scaled x4: what a model for real photos must not raise."""
    totals = dict.fromkeys(models, 0.0)
    side = lr * SCALE
    for path in files:
        small, bicubic = reduced(read_image(path)[0], lr)
        for name, model in models.items():
            totals[name] += blotch_score(model.upscale(small, size=(side, side)), bicubic)
    return {name: total / max(1, len(files)) for name, total in totals.items()}


def pick_rows(scores: dict[str, float], others: int) -> list[str]:
    """The :data:`HARDEST` highest scores, then ``others`` evenly spaced over the rest."""
    ranked = sorted(scores, key=lambda n: -scores[n])
    rest = ranked[HARDEST:]
    spaced = [rest[round(i * (len(rest) - 1) / max(1, others - 1))] for i in range(others)] if rest and others else []
    return ranked[:HARDEST] + list(dict.fromkeys(spaced))


def available(names: list[str]) -> list[str]:
    from arasfsr.registry import list_models

    known = list_models()
    return [n for n in names if n in known or Path(n).is_file()]


def compose(rows: list[tuple[str, list[np.ndarray]]], titles: list[str], side: int) -> Image.Image:
    """Tiles at 100 %, a title over each column and a label over each row."""
    font = ImageFont.load_default(size=15)
    gap, head, label = 6, 26, 22
    width = len(titles) * side + (len(titles) + 1) * gap
    height = head + len(rows) * (label + side + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(titles):
        draw.text((gap + c * (side + gap), 5), title, fill="black", font=font)
    y = head
    for text, tiles in rows:
        draw.text((gap, y + 3), text, fill="black", font=font)
        y += label
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (gap + c * (side + gap), y))
        y += side + gap
    return sheet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the figure, e.g. docs/img/realworld.png")
    ap.add_argument("--data", type=Path, default=None, help="the folder holding realworld/ (default: as arasfsr eval)")
    ap.add_argument("--lr", type=int, default=64, help="input side in pixels; the output is x4")
    ap.add_argument("--models", nargs="+", default=None,
                    help="models after bicubic (default: arasfsr, and arasfsr-real where it exists)")
    ap.add_argument("--others", type=int, default=3, help="faces shown besides the three hardest")
    args = ap.parse_args()
    if not 8 <= args.lr <= 256:
        print(f"error: --lr {args.lr}: give a side from 8 to 256", file=sys.stderr)
        return 2
    folder = resolve_data_root(args.data) / "realworld"
    try:
        files = image_files(folder)
    except (ArasfsrError, OSError) as exc:
        print(f"error: {folder}: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: {folder}: no faces", file=sys.stderr)
        return 2
    names = args.models or available(["arasfsr", "arasfsr-real"])
    models = {name: load_model(name) for name in dict.fromkeys(["arasfsr", *names])}
    out_side = args.lr * SCALE
    faces: dict[str, dict] = {}
    for path in files:
        img = read_image(path)[0]
        lr, bicubic = reduced(img, args.lr)
        srs = {n: m.upscale(lr, size=(out_side, out_side)) for n, m in models.items()}
        faces[path.stem] = {"lr": lr, "bicubic": bicubic, "sr": srs, "real": real_size(img),
                            "scores": {n: blotch_score(sr, bicubic) for n, sr in srs.items()}}
        faces[path.stem]["score"] = faces[path.stem]["scores"]["arasfsr"]
        print(f"{path.stem}: real size {faces[path.stem]['real'] or '>256'} px, "
              f"blotch score {faces[path.stem]['score']:.2f}", file=sys.stderr)
    chosen = pick_rows({n: f["score"] for n, f in faces.items()}, args.others)
    print("| face | real size (px) | " + " | ".join(f"blotch score, {n}" for n in models) + " | shown |")
    print("|---|---|" + "---|" * len(models) + "---|")
    for name in sorted(faces, key=lambda n: -faces[n]["score"]):
        f = faces[name]
        shown = "hardest" if name in chosen[:HARDEST] else ("yes" if name in chosen else "")
        print(f"| {name} | {f['real'] or '>256'} | " + " | ".join(f"{f['scores'][n]:.2f}" for n in models)
              + f" | {shown} |")
    rows = []
    for rank, name in enumerate(chosen):
        f = faces[name]
        tag = f"hardest #{rank + 1}, " if rank < HARDEST else ""
        text = f"{name}: {tag}real size {f['real'] or '>256'} px, blotch score {f['score']:.2f}"
        big = np.asarray(Image.fromarray(f["lr"]).resize((out_side, out_side), Image.NEAREST))
        rows.append((text, [big, f["bicubic"], *(f["sr"][n] for n in names)]))
    titles = [f"input {args.lr} px (nearest x{SCALE})", f"bicubic x{SCALE}", *(f"{n} x{SCALE}" for n in names)]
    print(write_image(compose(rows, titles, out_side), args.out, overwrite=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
