"""What a degradation costs per face, alone and inside a training batch, on this CPU.

    python -m tools.bench.degrade_cost --json benchmarks/results/degrade-cost/epyc-idle.json
    python -m tools.bench.degrade_cost --busy --json benchmarks/results/degrade-cost/epyc-busy1.json

Per kind (bicubic, mixture, realistic): the mean time of ``degrade()`` per 200x200 training
face at LR sizes drawn as protocol P/R draw them (12-96 px), then the time to make one whole
batch of 16 of ``paper/P-arasfsr`` and ``paper/R-arasfsr`` in the workers path
(``StepBatches[step]``: read the JPEGs, augment, HR resize, degrade, queries) and the loader's
part of the device path (``StepPlans[step]``). One process, one thread; run under
/work/bin/quiet on the shared machine, with ``--busy`` to keep one other core busy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from arasfsr.data import resolve_data_root
from arasfsr.data.degrade import degrade
from arasfsr.training import load_config
from arasfsr.training.data import StepBatches, list_images, subset
from arasfsr.training.device_data import StepPlans, decode_faces

from tools.provenance import write_result


def per_face(files: list[Path], kind: str, faces: int) -> dict[str, float]:
    from PIL import Image

    imgs = [Image.open(f).convert("RGB") for f in files]
    rng = np.random.default_rng(0)
    sizes = rng.integers(12, 97, faces)
    for i in range(20):  # warm-up
        degrade(imgs[i % len(imgs)], (int(sizes[i]), int(sizes[i])), kind, np.random.default_rng(i))
    times = []
    for i in range(faces):
        img, lr = imgs[i % len(imgs)], int(sizes[i])
        started = time.perf_counter()
        degrade(img, (lr, lr), kind, np.random.default_rng([i, 3]))
        times.append(time.perf_counter() - started)
    t = np.array(times) * 1e3
    return {"mean_ms": round(float(t.mean()), 3), "p50_ms": round(float(np.median(t)), 3),
            "p95_ms": round(float(np.percentile(t, 95)), 3), "faces": faces}


def batches(files: list[Path], config: str, steps: int) -> dict[str, float]:
    cfg = load_config(config)
    ds = StepBatches(files, cfg["data"], cfg["train"]["batch_size"], seed=0)
    plans = StepPlans(ds, decode_faces(files, cache=False))
    out = {}
    for name, fn in (("workers_batch_ms", lambda s: ds[s]), ("device_loader_batch_ms", lambda s: plans[s])):
        fn(0)
        started = time.perf_counter()
        for s in range(1, steps + 1):
            fn(s)
        out[name] = round((time.perf_counter() - started) / steps * 1e3, 1)
    out["batch_size"] = cfg["train"]["batch_size"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--faces", type=int, default=400, help="faces timed per kind")
    ap.add_argument("--steps", type=int, default=20, help="batches timed per config")
    ap.add_argument("--busy", action="store_true", help="keep one other core busy meanwhile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = resolve_data_root()
    files = subset(list_images(root / "utkface" / "train"), 400)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        result = {"per_face": {k: per_face(files, k, args.faces) for k in ("bicubic", "mixture", "realistic")},
                  "batch": {c: batches(files, c, args.steps) for c in ("paper/P-arasfsr", "paper/R-arasfsr")}}
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    result = {"threads": 1, "one_core_busy": args.busy, **result}
    print(json.dumps(result, indent=1))
    if args.json is not None:
        print(write_result(args.json, result, "tools.bench.degrade_cost"))


if __name__ == "__main__":
    main()
