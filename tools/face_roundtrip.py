"""Align a face and paste it back without super-resolution: how close is it to the original?

Each UTKFace test face is turned by an angle inside a larger canvas (its landmarks follow
from the template), cropped aligned at ZOOM x its own resolution, and warped back; PSNR is
measured on the face region (the crop's footprint less 10 % at each side); 100 dB means
identical.

    python -m tools.face_roundtrip --faces 50          # --data DIR, default $ARASFSR_DATA or ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.faces.align import TEMPLATE, alignment_matrix, natural_size, paste, warp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=resolve_data_root())
    ap.add_argument("--faces", type=int, default=50)
    ap.add_argument("--angles", type=float, nargs="+", default=[0, 15, 40])
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.0, 2.0])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    files = sorted((args.data / "utkface" / "test").glob("*.jpg"))[: args.faces]
    print("| angle (deg) | crop zoom | faces | PSNR mean (dB) | PSNR min (dB) |\n|---:|---:|---:|---:|---:|")
    for angle in args.angles:
        for zoom in args.zooms:
            scores = []
            for f in files:
                img = Image.open(f).convert("RGB")
                photo = np.asarray(img.rotate(angle, Image.BICUBIC, expand=True))
                t = np.deg2rad(angle)
                rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
                marks = (TEMPLATE * img.width - img.width / 2) @ rot.T + np.array(photo.shape[1::-1]) / 2
                n = int(np.ceil(natural_size(marks) * zoom))
                m = alignment_matrix(marks, n)
                canvas = np.zeros(photo.shape, np.float32)
                paste(canvas, warp(photo, m, (n, n)), m, mask=np.ones((n, n), np.float32))
                ys, xs = np.mgrid[0:photo.shape[0], 0:photo.shape[1]] + 0.5
                u, v = (m[i, 0] * xs + m[i, 1] * ys + m[i, 2] for i in range(2))
                face = (u > 0.1 * n) & (u < 0.9 * n) & (v > 0.1 * n) & (v < 0.9 * n)
                err = np.mean((np.clip(np.round(canvas[face]), 0, 255) - photo[face]) ** 2)
                scores.append(min(100.0, 10 * np.log10(255 ** 2 / max(err, 1e-12))))  # 100: identical
            print(f"| {angle:g} | {zoom:g} | {len(scores)} | {np.mean(scores):.2f} | {np.min(scores):.2f} |")


if __name__ == "__main__":
    main()
