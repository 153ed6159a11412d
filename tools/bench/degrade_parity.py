"""Parity of the device-made degradations with the Pillow-made ones evaluation uses.

    python -m tools.bench.degrade_parity                      # 200 utkface/val faces, CPU
    python -m tools.bench.degrade_parity --device cuda --json benchmarks/results/parity/cuda.json

For every LR size of the protocols (12..96) and the HR sizes (96, 128, 192, 200) it makes
each face's bicubic resize three ways: Pillow (what evaluation and the workers path use),
the device path's fixed-point matrices (``arasfsr.data.resample``) and, for comparison,
``F.interpolate(mode="bicubic", antialias=True)`` rounded to uint8. It prints the mean
PSNR against Pillow (inf when identical) and the share of pixels that differ. JPEG is not
made on the device (see training/device_data.py), so its gap is zero by construction.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.data.resample import WeightTable, resample
from arasfsr.imageio import image_files

from tools.provenance import write_result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=resolve_data_root(),
                   help="the folder holding utkface/ (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    p.add_argument("--faces", type=int, default=200)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    files = image_files(args.data / "utkface" / "val")[:args.faces]
    imgs = [Image.open(f).convert("RGB") for f in files]
    batch = torch.from_numpy(np.stack([np.asarray(i) for i in imgs])).permute(0, 3, 1, 2).to(args.device)
    side = batch.shape[-1]
    table = WeightTable(side, side, args.device)
    rows = []
    for size in list(range(12, 97)) + [128, 192, 200]:
        ref = np.stack([np.asarray(i.resize((size, size), Image.BICUBIC)) for i in imgs])
        s = torch.full((len(imgs),), size, device=args.device)
        ours = resample(batch, table.rows(s)[:, :size], table.rows(s)[:, :size])
        ours = ours.permute(0, 2, 3, 1).to("cpu", torch.uint8).numpy()
        interp = F.interpolate(batch.double(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        interp = interp.round().clamp(0, 255).permute(0, 2, 3, 1).to("cpu", torch.uint8).numpy()
        rows.append({"size": size,
                     "matrix_psnr": float(np.mean([psnr(o, r) for o, r in zip(ours, ref)])),
                     "matrix_differing": float(np.mean(ours != ref)),
                     "interpolate_psnr": float(np.mean([psnr(o, r) for o, r in zip(interp, ref)])),
                     "interpolate_differing": float(np.mean(interp != ref))})
    lr_rows = [r for r in rows if r["size"] <= 96]
    worst_interp = min(r["interpolate_psnr"] for r in rows)
    summary = {"faces": len(imgs), "device": args.device, "sizes": [r["size"] for r in rows],
               "matrix_identical_everywhere": all(r["matrix_differing"] == 0 for r in rows),
               "interpolate_mean_psnr_lr": float(np.mean([r["interpolate_psnr"] for r in lr_rows])),
               "interpolate_worst_psnr": worst_interp, "rows": rows}
    print(f"{len(imgs)} faces of {args.data / 'utkface' / 'val'}, device {args.device}")
    print("| size | matrix PSNR | matrix px differing | F.interpolate PSNR | F.interpolate px differing |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["size"] in (12, 16, 24, 32, 48, 64, 96, 128, 192, 200):
            print(f"| {r['size']} | {r['matrix_psnr']:.2f} | {r['matrix_differing']:.4f} | "
                  f"{r['interpolate_psnr']:.2f} | {r['interpolate_differing']:.4f} |")
    print(f"matrix path identical to Pillow at every size: {summary['matrix_identical_everywhere']}; "
          f"F.interpolate mean PSNR over LR sizes 12-96: {summary['interpolate_mean_psnr_lr']:.2f} dB, "
          f"worst size {worst_interp:.2f} dB")
    if args.json:
        write_result(args.json, summary, __spec__.name, argv)
    return 0 if summary["matrix_identical_everywhere"] else 1


if __name__ == "__main__":
    sys.exit(main())
