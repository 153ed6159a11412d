"""Compute every candidate's raw maps for a set of faces and cache them (one .npz per face and row).

    python -m tools.uncertainty.collect --split val --limit 100 --out /tmp/uncert/val
    python -m tools.uncertainty.collect --split test --limit 1000 --out /tmp/uncert/test --cheap

Each file holds (H, W) float16 maps, 8-bit units: ``err`` (|SR - HR| averaged over RGB, SR
as rendered and clamped, not rounded), ``err_y`` (the same on BT.601 luma), ``ens``
(weighted std of the 4 local-ensemble predictions), ``gbic`` / ``gsr`` (Sobel magnitude of
the bicubic up-sampling / of the SR), ``dbic`` (|SR - bicubic|); without ``--cheap`` also
``lat4``/``lat8`` (std over 4/8 latent samples), ``flip`` (|SR - flipped SR| / 2), ``shift``
(std over SR and 4 quarter-pixel shifts) and ``tta`` (std over SR, flip and the shifts).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from tools.uncertainty.estimators import (LEVELS, SHIFTS, bicubic_up, latent_samples, render_flipped,
                        render_parts, render_shifted, rgb_mean_std, sobel_magnitude)

from arasfsr import load_model
from arasfsr.data import resolve_data_root
from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair

Y_WEIGHTS = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).float().unsqueeze(0) / 255


def face_maps(model, lr: np.ndarray, hr: np.ndarray, cheap: bool, latent: bool = True) -> dict[str, np.ndarray]:
    lr_t, hr_t = to_tensor(lr), to_tensor(hr)
    size = hr.shape[:2]
    sr, spread = render_parts(model, lr_t, size)
    srf = sr.clamp(0, 1)
    bic = bicubic_up(lr_t, size)
    maps = {
        "err": ((srf - hr_t).abs().mean(dim=1)[0] * LEVELS).numpy(),
        "err_y": (((srf - hr_t) * Y_WEIGHTS).sum(dim=1).abs()[0] * LEVELS).numpy(),
        "ens": (spread.mean(dim=1)[0] * LEVELS).numpy(),
        "gbic": sobel_magnitude(bic),
        "gsr": sobel_magnitude(srf),
        "dbic": ((srf - bic).abs().mean(dim=1)[0] * LEVELS).numpy(),
    }
    if not cheap and latent:
        lat = latent_samples(model, lr_t, size, 8, seed=0)
        maps["lat4"] = rgb_mean_std(lat[:4])
        maps["lat8"] = rgb_mean_std(lat)
    if not cheap:
        flipped = render_flipped(model, lr_t, size)
        shifted = [render_shifted(model, lr_t, size, dy, dx) for dy, dx in SHIFTS]
        maps["flip"] = rgb_mean_std([sr, flipped])
        maps["shift"] = rgb_mean_std([sr] + shifted)
        maps["tta"] = rgb_mean_std([sr, flipped] + shifted)
    return {k: np.asarray(v, dtype=np.float16) for k, v in maps.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cheap", action="store_true", help="only the single-pass maps")
    ap.add_argument("--rows", default="16-128,32-128", help="LR-HR sizes, comma-separated")
    ap.add_argument("--no-latent", action="store_true", help="skip the 8 latent samples")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("arasfsr").model  # precision "auto", as upscale() runs it
    dataset = f"utkface/{args.split}"
    faces = list_faces(resolve_data_root(), dataset, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [TestRow(dataset, *(int(v) for v in r.split("-"))) for r in args.rows.split(",")]
    for i, path in enumerate(faces):
        gt = load_ground_truth(path, dataset)
        for row in rows:
            dest = args.out / f"{row.lr}-{row.hr}" / f"{path.stem}.npz"
            if dest.exists():
                continue
            dest.parent.mkdir(exist_ok=True)
            lr, hr = make_pair(gt, row)
            if i == 0:  # the re-implemented render must be the model's own
                with torch.inference_mode():
                    ref = model.render(to_tensor(lr), hr.shape[:2], precision="auto")
                got, _ = render_parts(model, to_tensor(lr), hr.shape[:2])
                assert torch.equal(ref, got), float((ref - got).abs().max())
            np.savez(dest, **face_maps(model, lr, hr, args.cheap, not args.no_latent))
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{len(faces)} faces, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
