"""Where does a learned model stop adding detail over bicubic? Mean |model - bicubic| by input size.

    python -m tools.bench.large_inputs --out benchmarks/results/large-inputs/realworld.json

Real faces (``realworld/``, 512x512 aligned photos, no ground truth needed) are shrunk
(bicubic, anti-aliased) to each input side, then up-scaled x2 and x4 by the model (forced:
``force_model=True``) and by bicubic; the figure per face is the mean over pixels and RGB of
|model - bicubic| in grey levels (0-255). Where it falls under about half a grey level the
model's output is bicubic's for every practical purpose, at many times the cost: that side
is ``runtime.MODEL_DETAIL_SIDE``. The times are each render's (one run, the machine's load
at the time: see the JSON).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tools.provenance import write_result

SIDES = (64, 96, 128, 192, 256, 320, 384, 512)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=int, default=6, help="realworld faces, evenly spaced in name order")
    p.add_argument("--sides", default=",".join(map(str, SIDES)))
    p.add_argument("--scales", default="2,4")
    p.add_argument("--max-out", type=int, default=1536, help="skip renders with a larger output side")
    p.add_argument("--model", default="arasfsr")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    from PIL import Image

    import arasfsr
    from arasfsr.data import resolve_data_root
    from arasfsr.protocols import list_faces

    model = arasfsr.load_model(args.model, force_model=True, max_pixels=None)
    bicubic = arasfsr.load_model("bicubic", max_pixels=None)
    faces = list_faces(resolve_data_root(None), "realworld", args.faces)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        for side in (int(s) for s in args.sides.split(",")):
            out = round(side * scale)
            if out > args.max_out:
                continue
            diffs, seconds = [], []
            for path in faces:
                face = Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC, reducing_gap=None)
                start = time.perf_counter()
                sr = np.asarray(model.upscale(face, size=(out, out)), np.float64)
                seconds.append(time.perf_counter() - start)
                ref = np.asarray(bicubic.upscale(face, size=(out, out)), np.float64)
                diffs.append(float(np.abs(sr - ref).mean()))
            rows.append({"side": side, "scale": scale, "out": out, "faces": len(faces),
                         "mean_abs_vs_bicubic": statistics.fmean(diffs), "max_face": max(diffs),
                         "min_face": min(diffs), "median_s": statistics.median(seconds)})
            if args.out:  # after every row: a stopped run keeps what it measured
                write_result(args.out, {"model": model.name, "precision": model.precision,
                                        "faces": [f.name for f in faces], "rows": rows}, "tools.bench.large_inputs", argv)
            r = rows[-1]
            print(f"x{scale:g} {side:>4} -> {out:>5}: |model - bicubic| {r['mean_abs_vs_bicubic']:.3f} grey levels "
                  f"(faces {r['min_face']:.3f}-{r['max_face']:.3f}), {r['median_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
