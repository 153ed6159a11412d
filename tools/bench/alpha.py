"""How to up-scale an image with transparency: the two choices behind ``Upscaler.upscale``.

1. The alpha channel: bicubic, or the model run on the alpha copied to three channels?
   Five mattes (an ellipse, text, stripes, a radial gradient, a soft face-shaped matte) drawn
   at 200x200, shrunk x4 (bicubic), up-scaled x4 both ways; PSNR against the 200x200 matte.
2. The colour under full transparency (black, white or noise, whatever the file holds):
   give it to the model as it is ("as is"), or fill it first from the nearest visible
   pixels (``fill_transparent``)? utkface/val faces cut out by a soft ellipse, shrunk x4,
   up-scaled x4 with bicubic alpha; PSNR of the picture laid on black and on white against
   the original laid alike, in the band around the cut-out's edge, where fringes show.

    python -m tools.bench.alpha [--model arasfsr] [--faces 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import arasfsr
from arasfsr.imageio import fill_transparent, resize_alpha

from tools import ROOT

N, S, K = 200, 4, 4  # picture side, scale, supersampling of the drawn mattes


def psnr(x: np.ndarray, y: np.ndarray, where: np.ndarray | None = None) -> float:
    d = (x.astype(np.float64) - y) ** 2
    return float(10 * np.log10(1 / (d[where] if where is not None else d).mean()))


def matte(kind: str, face: Image.Image) -> np.ndarray:
    big = Image.new("L", (N * K, N * K), 0)
    draw = ImageDraw.Draw(big)
    if kind == "ellipse":
        draw.ellipse((N * K * 0.12, N * K * 0.05, N * K * 0.88, N * K * 0.97), fill=255)
    elif kind == "text":
        draw.text((20, 250), "arasfsr", fill=255, font=ImageFont.load_default(size=190))
    elif kind == "stripes":
        for x in range(0, N * K, 48):
            draw.rectangle((x, 0, x + 20, N * K), fill=255)
    elif kind == "gradient":
        y, x = np.mgrid[:N * K, :N * K] - N * K / 2
        big = Image.fromarray((np.clip(1 - np.hypot(x, y) / (N * K / 2), 0, 1) * 255).astype(np.uint8))
    else:  # a soft, detailed matte shaped like a face
        lum = np.asarray(face.convert("L").resize((N * K, N * K))).astype(np.float64)
        big = Image.fromarray(np.clip((lum - 80) * 3, 0, 255).astype(np.uint8))
    return np.asarray(big.resize((N, N), Image.BOX))


def model_on(up: arasfsr.Upscaler, rgb: np.ndarray) -> np.ndarray:
    return up.upscale_batch(rgb[None], (N, N))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="arasfsr")
    ap.add_argument("--faces", type=int, default=5)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    up = arasfsr.load_model(args.model)
    faces = [Image.open(p).convert("RGB") for p in sorted((args.data / "utkface" / "val").glob("*.jpg"))[:args.faces]]

    print(f"1. alpha channel, x{S} from {N // S}x{N // S}: PSNR (dB) against the {N}x{N} matte")
    for kind in ("ellipse", "text", "stripes", "gradient", "face-shaped"):
        hr = matte(kind, faces[min(3, len(faces) - 1)])
        lr = Image.fromarray(hr).resize((N // S, N // S), Image.BICUBIC)
        t = time.perf_counter()
        bicubic = np.asarray(resize_alpha(lr, (N, N)))
        t_bicubic, t = time.perf_counter() - t, time.perf_counter()
        by_model = model_on(up, np.repeat(np.asarray(lr)[..., None], 3, 2)).mean(2).round()
        t_model = time.perf_counter() - t
        print(f"  {kind:12s} bicubic {psnr(bicubic / 255, hr / 255):5.2f} ({t_bicubic * 1000:.1f} ms)"
              f"   model {psnr(by_model / 255, hr / 255):5.2f} ({t_model:.2f} s)")

    print(f"2. colour under transparency, x{S}: PSNR (dB) in the edge band, laid on black / on white")
    alpha = matte("ellipse", faces[0]) / 255
    band = np.asarray(Image.fromarray(((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8) * 255)
                      .filter(ImageFilter.MaxFilter(7))) > 0
    rng = np.random.default_rng(0)
    for hidden in ("black", "white", "noise"):
        scores: dict[str, list[tuple[float, float]]] = {"as is": [], "filled": []}
        for face in faces:
            hr = np.asarray(face.resize((N, N))) / 255
            rgba = Image.fromarray((np.dstack([hr, alpha]) * 255 + 0.5).astype(np.uint8))
            lr = np.asarray(rgba.resize((N // S, N // S), Image.BICUBIC)).copy()
            under = {"black": 0, "white": 255, "noise": rng.integers(0, 256, lr[..., :3].shape)}[hidden]
            lr[..., :3] = np.where(lr[..., 3:] == 0, under, lr[..., :3])
            a = np.asarray(resize_alpha(Image.fromarray(lr[..., 3]), (N, N)))[..., None] / 255
            for name, colour in (("as is", lr[..., :3]), ("filled", fill_transparent(lr[..., :3], lr[..., 3]))):
                sr = model_on(up, np.ascontiguousarray(colour)) / 255
                scores[name].append(tuple(psnr(sr * a + bg * (1 - a), hr * alpha[..., None] + bg * (1 - alpha[..., None]),
                                               band) for bg in (0.0, 1.0)))
        line = "   ".join(f"{name} {np.mean([s[0] for s in v]):5.2f} / {np.mean([s[1] for s in v]):5.2f}"
                           for name, v in scores.items())
        print(f"  {hidden:5s} hidden: {line}")


if __name__ == "__main__":
    main()
