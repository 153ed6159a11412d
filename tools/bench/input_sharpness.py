"""How blurred the inputs are: realworld/ faces against the training inputs of protocol R.

    python -m tools.bench.input_sharpness --json benchmarks/results/input-sharpness/input-sharpness.json

Every input is a 64 px face: the ``realworld/`` photos reduced from 512 px (bicubic, as
``tools.realworld_figure`` feeds them to the models), and ``utkface/val`` faces reduced by
plain bicubic, by the realistic chain of ``paper/R-arasfsr`` (every face degraded), and by
that chain without its blurs. Per input: the luma power in the upper half of the spectrum
(0.25-0.5 cycles/px) over the power in 0.05-0.25 cycles/px, on the Hann-windowed face. A
blurred input has less of the first. It asks whether the chain blurs its inputs as much
as the real photos are blurred (issue 26: a model for real photos that deblurs more than
they need would sharpen their mottling).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.data.degrade import degrade
from arasfsr.imageio import image_files, read_image
from arasfsr.protocols import list_faces
from arasfsr.training import load_config

from tools.provenance import write_result

SIDE = 64
UPPER, LOWER = (0.25, 0.5), (0.05, 0.25)


def band_ratio(img: Image.Image) -> float:
    """Upper-band over lower-band luma power of a SIDE x SIDE face."""
    y = np.asarray(img.convert("L"), np.float64)
    y = (y - y.mean()) * np.outer(np.hanning(SIDE), np.hanning(SIDE))
    power = np.abs(np.fft.fft2(y)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(SIDE), np.fft.fftfreq(SIDE), indexing="ij")
    radius = np.hypot(fy, fx)
    upper = power[(radius >= UPPER[0]) & (radius <= UPPER[1])].sum()
    return float(upper / power[(radius >= LOWER[0]) & (radius < LOWER[1])].sum())


def summary(values: list[float]) -> dict[str, float]:
    v = np.array(values)
    return {"inputs": len(v), "median": round(float(np.median(v)), 4),
            "p10": round(float(np.percentile(v, 10)), 4), "p90": round(float(np.percentile(v, 90)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--faces", type=int, default=200, help="utkface/val faces")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    root = resolve_data_root(args.data)
    chain = {**load_config("paper/R-arasfsr")["data"]["realistic"], "clean_prob": 0.0}
    unblurred = {**chain, "blur_prob": 0.0, "blur2_prob": 0.0}
    sets: dict[str, list[float]] = {"realworld/ (512 px reduced by bicubic)": [
        band_ratio(read_image(p)[0].resize((SIDE, SIDE), Image.BICUBIC)) for p in image_files(root / "realworld")]}
    clean, blurred, sharp = [], [], []
    for i, path in enumerate(list_faces(root, "utkface/val", args.faces)):
        face = read_image(path)[0]
        clean.append(band_ratio(face.resize((SIDE, SIDE), Image.BICUBIC)))
        blurred.append(band_ratio(degrade(face, (SIDE, SIDE), "realistic", np.random.default_rng([7, i]), chain)))
        sharp.append(band_ratio(degrade(face, (SIDE, SIDE), "realistic", np.random.default_rng([7, i]), unblurred)))
    sets.update({"utkface/val, bicubic": clean, "utkface/val, the R chain": blurred,
                 "utkface/val, the R chain without blur": sharp})
    result = {"side": SIDE, "measure": f"luma power {UPPER} over {LOWER} cycles/px, Hann window",
              "sets": {name: summary(values) for name, values in sets.items()}}
    for name, row in result["sets"].items():
        print(f"{name:42s} {row['inputs']:4d} inputs: median {row['median']:.4f} (p10 {row['p10']:.4f}, "
              f"p90 {row['p90']:.4f})")
    if args.json:
        print(write_result(args.json, result, "tools.bench.input_sharpness", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
