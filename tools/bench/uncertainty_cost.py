"""What ``upscale(..., uncertainty=True)`` costs: time as a multiple of the plain upscale.

    python -m tools.bench.uncertainty_cost                  # default model, 1 torch thread
    python -m tools.bench.uncertainty_cost --busy-cores 1   # the same with one core kept busy

Per size: plain and with-map upscales alternate (so a change of load hits both), median
of ``--repeats``; plus the map alone (``uncertainty_map`` on a rendered SR).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from tools.bench.busy import busy_cores

SIZES = ((16, 128), (32, 128), (128, 512))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="arasfsr")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--busy-cores", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from arasfsr import load_model
    from arasfsr.api import images_to_tensor
    from arasfsr.uncertainty import uncertainty_map

    up = load_model(args.model)
    with busy_cores(args.busy_cores):
        for lr_side, out_side in SIZES:
            img = (np.random.default_rng(0).random((lr_side, lr_side, 3)) * 255).astype(np.uint8)
            up.upscale(img, size=(out_side, out_side), uncertainty=True)  # warm-up
            plain, with_map, alone = [], [], []
            for _ in range(args.repeats):
                for flag, times in ((False, plain), (True, with_map)):
                    t0 = time.perf_counter()
                    up.upscale(img, size=(out_side, out_side), uncertainty=flag)
                    times.append(time.perf_counter() - t0)
                lr = images_to_tensor(img[None])
                sr = torch.rand(1, 3, out_side, out_side)
                t0 = time.perf_counter()
                uncertainty_map(lr, sr)
                alone.append(time.perf_counter() - t0)
            p, w, a = (statistics.median(t) for t in (plain, with_map, alone))
            print(f"{lr_side}->{out_side}: upscale {p * 1e3:.0f} ms, with map {w * 1e3:.0f} ms ({w / p:.2f}x), "
                  f"map alone {a * 1e3:.1f} ms ({a / p:.3f}x of upscale); {args.threads} thread(s), "
                  f"{args.busy_cores} busy cores, load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
