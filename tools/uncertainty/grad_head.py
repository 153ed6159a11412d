"""The chosen estimator, written the way the API would compute it (torch only, no scipy):

    B   = bicubic up-sampling of the LR to the output size (anti-aliased, as the ``bicubic`` model)
    gsr = Sobel magnitude of grey(SR)              (grey = RGB mean, 8-bit units, kernels / 8)
    d   = RGB mean of |SR - B|                     (8-bit units)
    u   = k * max(0, exp(c0 + c1 * log(0.1 + G2 * gsr) + c2 * log(0.1 + G2 * d) + c3 * log2(scale)) - 1)

G2 is a Gaussian blur with sigma 2 output pixels (radius 8, edge-duplicating padding, as
scipy's gaussian_filter 'reflect'). The c's are least squares of log(1 + |error|) on val;
k = 1.39 (mean actual / mean predicted on val) makes u the expected |SR - HR| in grey
levels (RGB mean).

    python -m tools.uncertainty.grad_head --coef /tmp/uncert/val-insample.json \\
        --faces 3 --out /work/brief/uncertainty-examples.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tools.uncertainty.estimators import bicubic_up, sobel_magnitude

KEY = "16-128+32-128:gsr,dbic"
CALIBRATION = 1.39  # calibrate.py on utkface/val: k = 1.42 at x8, 1.32 at x4 (pooled 1.39)


def gaussian_blur(img: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """(B,1,H,W) separable Gaussian, radius round(4 sigma), edge-duplicating (symmetric) padding."""
    r = int(4 * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=img.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()

    def sym_pad(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        idx = torch.arange(-r, n + r)
        idx = torch.where(idx < 0, -idx - 1, idx)
        idx = torch.where(idx >= n, 2 * n - idx - 1, idx)
        return t.index_select(dim, idx.clamp(0, n - 1))  # clamp: faces smaller than r

    img = F.conv2d(sym_pad(img, 3), k.view(1, 1, 1, -1))
    return F.conv2d(sym_pad(img, 2), k.view(1, 1, -1, 1))


def uncertainty_map(lr: torch.Tensor, sr: torch.Tensor, coef: dict[str, float], k: float = 1.0) -> torch.Tensor:
    """(1,3,h,w) LR and (1,3,H,W) SR in [0,1] -> (H,W) predicted |error| in grey levels
    (k = :data:`CALIBRATION` for the expected |error|; k = 1 as fitted)."""
    size = sr.shape[-2:]
    srf = sr.clamp(0, 1)
    bic = bicubic_up(lr, size)
    gsr = torch.from_numpy(sobel_magnitude(srf))[None, None]
    dbic = ((srf - bic).abs().mean(dim=1, keepdim=True) * 255)
    scale = math.sqrt(size[0] / lr.shape[-2] * size[1] / lr.shape[-1])
    z = (coef["const"] + coef["log(0.1+blur2(gsr))"] * torch.log(0.1 + gaussian_blur(gsr))
         + coef["log(0.1+blur2(dbic))"] * torch.log(0.1 + gaussian_blur(dbic))
         + coef["log2_scale"] * math.log2(scale))
    return k * torch.expm1(z)[0, 0].clamp(min=0)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from arasfsr import load_model
    from arasfsr.data import resolve_data_root
    from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair

    ap = argparse.ArgumentParser()
    ap.add_argument("--coef", type=Path, required=True, help="evaluate.py --fit-on output with the head")
    ap.add_argument("--split", default="val")
    ap.add_argument("--faces", type=int, default=3)
    ap.add_argument("--lr", type=int, default=16)
    ap.add_argument("--vmax", type=float, default=30.0, help="top of the colour scale, grey levels")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    coef = json.loads(args.coef.read_text())["coefficients"][KEY]
    up = load_model("arasfsr")
    dataset = f"utkface/{args.split}"
    paths = list_faces(resolve_data_root(), dataset, 97)[::97 // args.faces][:args.faces]
    fig, axes = plt.subplots(len(paths), 5, figsize=(13, 2.8 * len(paths)), squeeze=False)
    for ax_row, path in zip(axes, paths):
        lr, hr = make_pair(load_ground_truth(path, dataset), TestRow(dataset, args.lr, 128))
        lr_t = torch.from_numpy(np.array(lr)).permute(2, 0, 1).float()[None] / 255
        with torch.inference_mode():
            sr = up.network(lr_t, (128, 128))  # as upscale runs it (precision auto)
            unc = uncertainty_map(lr_t, sr, coef, CALIBRATION).numpy()
            grad = sobel_magnitude(bicubic_up(lr_t, (128, 128)))
        hr_t = torch.from_numpy(np.array(hr)).permute(2, 0, 1).float()[None] / 255
        err = ((sr.clamp(0, 1) - hr_t).abs().mean(1)[0] * 255).numpy()
        tiles = [(np.array(lr), f"LR {args.lr}x{args.lr}", None), (sr[0].clamp(0, 1).permute(1, 2, 0).numpy(), "SR (arasfsr)", None),
                 (err, "|SR - HR| (grey levels)", "err"), (unc, "uncertainty: expected |error|", "err"),
                 (grad, "baseline: bicubic gradient", "grad")]
        for ax, (img, title, kind) in zip(ax_row, tiles):
            if kind is None:
                ax.imshow(img, interpolation="nearest")
            else:
                im = ax.imshow(img, cmap="inferno", vmin=0, vmax=args.vmax if kind == "err" else np.percentile(img, 99))
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        ax_row[0].set_title(f"{path.name[:20]}\nLR {args.lr}x{args.lr}", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
