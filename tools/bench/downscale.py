"""Down-scaling policy: a large face asked for an output no larger than itself.

    python -m tools.bench.downscale --faces 20 --model arasfsr

When the output is not larger than the input on both axes, ``Upscaler.render`` does not
run the network on the full input (slow and memory-hungry, and the model never saw such
faces). Two candidates, on ``utkface/val`` faces (200 px ground truth ``hr``):

- ``resize``: anti-aliased bicubic of the input to the output size;
- ``shrink+model``: that resize, then the model at x1 on it.

Inputs (400 px): ``sharp`` = ``hr`` up-scaled x2 (Lanczos); ``soft`` = ``hr`` down to
100 px and back up to 400 px (bicubic), JPEG quality 60, as an up-scaled web photo.
The reference at the output size is ``hr`` resized by Lanczos (Pillow, anti-aliased).
Prints the mean PSNR (dB, RGB) per input kind, output size and candidate.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys

import numpy as np
from PIL import Image

import arasfsr  # noqa: F401  (before torch: threading defaults)
import torch
import torch.nn.functional as F

from arasfsr.api import images_to_tensor, load_model
from arasfsr.data import resolve_data_root


def inputs(hr: Image.Image) -> dict[str, Image.Image]:
    sharp = hr.resize((400, 400), Image.LANCZOS)
    buf = io.BytesIO()
    hr.resize((100, 100), Image.BICUBIC).resize((400, 400), Image.BICUBIC).save(buf, "JPEG", quality=60)
    return {"sharp": sharp, "soft": Image.open(io.BytesIO(buf.getvalue())).convert("RGB")}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255 ** 2 / mse)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=int, default=20)
    p.add_argument("--model", default="arasfsr")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128, 256])
    args = p.parse_args()
    files = sorted((resolve_data_root() / "utkface" / "val").glob("*.jpg"))[: args.faces]
    model = load_model(args.model).model
    scores: dict[tuple[str, int, str], list[float]] = {}
    with torch.inference_mode():
        for f in files:
            hr = Image.open(f).convert("RGB")
            for kind, img in inputs(hr).items():
                lr = images_to_tensor(np.asarray(img)[None])
                for side in args.sizes:
                    ref = np.asarray(hr.resize((side, side), Image.LANCZOS))
                    small = F.interpolate(lr, size=(side, side), mode="bicubic", antialias=True).clamp(0, 1)
                    for name, out in (("resize", small), ("shrink+model", model.render(small, (side, side)))):
                        got = (out.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
                        scores.setdefault((kind, side, name), []).append(psnr(got, ref))
    print(f"{len(files)} faces of utkface/val, model {args.model}, 400-px inputs")
    for (kind, side, name), vals in scores.items():
        print(f"{kind:6s} 400->{side:<4d} {name:13s} PSNR {statistics.mean(vals):6.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
