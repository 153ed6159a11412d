"""Statistics of LR inputs: realistic-chain faces beside the realworld/ faces at the same size.

    python -m tools.realistic_stats                      # the default ranges
    python -m tools.realistic_stats --set gaussian_sigma=[1,12] --set noise_prob=0.8

Per set, the 10/50/90th percentiles of two statistics of the LR input's luma: Immerkær's
noise estimate (grey levels) and the mean absolute second difference (sharpness). Sets:
the 20 realworld/ faces cropped to the UTKFace framing and reduced (area) to ``--side`` px,
about their real size; ``--faces`` utkface/val faces reduced by bicubic; the same faces by the
realistic chain (one draw each, seeded by the face's index). How the chain's default ranges
were chosen (docs/degradations.md).
"""

from __future__ import annotations

import argparse

import numpy as np
import yaml
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.data.degrade import degrade
from arasfsr.imageio import image_files, read_image
from arasfsr.protocols import crop_ffhq

LUMA = np.array([0.299, 0.587, 0.114])


def noise_sigma(a: np.ndarray) -> float:
    """Immerkær (1996): the noise sigma from the image convolved with a Laplacian difference mask."""
    m = (a[:-2, :-2] - 2 * a[:-2, 1:-1] + a[:-2, 2:] - 2 * a[1:-1, :-2] + 4 * a[1:-1, 1:-1]
         - 2 * a[1:-1, 2:] + a[2:, :-2] - 2 * a[2:, 1:-1] + a[2:, 2:])
    return float(np.sqrt(np.pi / 2) * np.abs(m).mean() / 6)


def stats(img: Image.Image) -> tuple[float, float]:
    a = np.asarray(img, dtype=np.float64) @ LUMA
    return noise_sigma(a), float(np.abs(np.diff(a, 2, axis=0)).mean() + np.abs(np.diff(a, 2, axis=1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=40, help="LR side in pixels")
    ap.add_argument("--faces", type=int, default=100, help="utkface/val faces")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a realistic setting (YAML value)")
    args = ap.parse_args()
    settings = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    root, size = resolve_data_root(), (args.side, args.side)
    val = [read_image(p)[0] for p in image_files(root / "utkface" / "val")[:args.faces]]
    sets = {
        "realworld": [stats(crop_ffhq(read_image(p)[0]).resize(size, Image.BOX)) for p in image_files(root / "realworld")],
        "bicubic": [stats(degrade(img, size)) for img in val],
        "realistic": [stats(degrade(img, size, "realistic", np.random.default_rng(i), settings)) for i, img in enumerate(val)],
    }
    print(f"LR {args.side} px; percentiles 10/50/90")
    for name, values in sets.items():
        v = np.array(values)
        noise, second = (np.percentile(v[:, k], [10, 50, 90]) for k in (0, 1))
        print(f"{name:10s} noise {'/'.join(f'{x:.2f}' for x in noise)}   second difference "
              f"{'/'.join(f'{x:.1f}' for x in second)}   ({len(v)} faces)")


if __name__ == "__main__":
    main()
