"""Time of each estimator (SR + its map) as a multiple of plain ``upscale`` (same faces, interleaved).

    python -m tools.uncertainty.timing --faces 10 --repeats 3 --threads 1

Medians per face; the ratio is median(estimator) / median(upscale) over all calls.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from tools.uncertainty.estimators import (SHIFTS, bicubic_up, latent_samples, render_flipped, render_parts,
                        render_shifted, rgb_mean_std, sobel_magnitude)
from tools.uncertainty.grad_head import uncertainty_map
from tools.uncertainty.heads import LinearHead, feature_stack

from arasfsr import load_model
from arasfsr.data import resolve_data_root
from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    up = load_model("arasfsr")
    model = up.model
    head = LinearHead()
    head.coef = np.zeros(1 + 2 * 4, np.float32)  # timing only: the coefficients do not matter

    def plain(lr, size):
        return up.upscale(lr, size=size[::-1])

    def t(lr):
        return torch.from_numpy(np.array(lr)).permute(2, 0, 1).float().unsqueeze(0) / 255

    def gradient(lr, size):
        out = up.upscale(lr, size=size[::-1])
        return out, sobel_magnitude(bicubic_up(t(lr), size))

    def ensemble(lr, size):
        return render_parts(model, t(lr), size)

    def head_cheap(lr, size):
        x = t(lr)
        sr, spread = render_parts(model, x, size)
        bic = bicubic_up(x, size)
        srf = sr.clamp(0, 1)
        maps = {"ens": spread.mean(1).numpy(), "gbic": sobel_magnitude(bic)[None], "gsr": sobel_magnitude(srf)[None],
                "dbic": (srf - bic).abs().mean(1).numpy()}
        return sr, head.predict(feature_stack(maps, ["ens", "gbic", "gsr", "dbic"]))

    coef = {"const": -0.0592, "log(0.1+blur2(gsr))": 0.2437, "log(0.1+blur2(dbic))": 0.2676, "log2_scale": 0.445}

    def grad_head(lr, size):  # the chosen estimator, as grad_head.py computes it (torch only)
        out = up.upscale(lr, size=size[::-1])
        x = t(lr)
        sr = torch.from_numpy(out).permute(2, 0, 1).float()[None] / 255
        return out, uncertainty_map(x, sr, coef)

    def latent8(lr, size):
        x = t(lr)
        sr, _ = render_parts(model, x, size)
        return sr, rgb_mean_std(latent_samples(model, x, size, 8))

    def tta6(lr, size):
        x = t(lr)
        sr, _ = render_parts(model, x, size)
        outs = [sr, render_flipped(model, x, size)] + [render_shifted(model, x, size, dy, dx) for dy, dx in SHIFTS]
        return sr, rgb_mean_std(outs)

    estimators = {"upscale": plain, "gbic": gradient, "ens": ensemble, "lin-cheap": head_cheap, "grad-head": grad_head,
                  "lat8": latent8, "tta": tta6}
    faces = list_faces(resolve_data_root(), "utkface/val", args.faces)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    for lr_side in (16, 32):
        times: dict[str, list[float]] = {k: [] for k in estimators}
        for path in faces:
            lr, _ = make_pair(load_ground_truth(path, "utkface/val"), TestRow("utkface/val", lr_side, 128))
            for _ in range(args.repeats):
                for name, fn in estimators.items():
                    with torch.inference_mode():
                        start = time.perf_counter()
                        fn(lr, (128, 128))
                        times[name].append(time.perf_counter() - start)
        base = statistics.median(times["upscale"])
        print(f"{lr_side}->128: " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms ({statistics.median(v) / base:.2f}x)"
                                             for k, v in times.items()), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
