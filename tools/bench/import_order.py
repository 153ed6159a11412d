"""64->512 through the API with ``import torch`` before or after ``import arasfsr``, the
authors' formulation beside it, and the CLI; idle or with cores kept busy.

    python -m tools.bench.import_order --json benchmarks/results/import-order/idle.json
    python -m tools.bench.import_order --busy-cores 1 --json benchmarks/results/import-order/busy1.json
    python -m tools.bench.import_order --src /work/main --busy-cores 1   # another checkout (baseline)

OpenMP reads its wait policy when torch loads: ``import arasfsr`` first sets it to passive,
``import torch`` first leaves OpenMP's spinning default (what a notebook usually does).
Each measurement is a fresh process (``--rounds`` of them per case, taken in turn so that
the machine's drift hits every case alike): ``api`` renders a real face (utkface/val,
shrunk to 64x64) to 512x512 with ``load_model().upscale`` (``--precision``, default auto),
``--warmup`` then ``--repeats`` times; ``reference`` renders it once by the authors'
formulation (``arasfsr.models.reference``, fp32) in a process imported the same way, as
the authors' code would run in the user's process; ``cli`` is the wall time of the whole
``arasfsr upscale ... --size 512x512`` command (import, model load and write included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .busy import busy_cores, load_average
from tools.provenance import write_result

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ("arasfsr-first", "torch-first")
CHILD = """
import json, sys, time
order, engine, repeats, warmup, face, precision, threads = sys.argv[1:3] + [int(v) for v in sys.argv[3:5]] + sys.argv[5:8]
if order == "torch-first":
    import torch
    import arasfsr
else:
    import arasfsr
    import torch
from PIL import Image
up = arasfsr.load_model(precision=precision)
if threads != "auto":  # a fixed count: arasfsr's thread policy set aside
    from arasfsr import runtime
    runtime.thread_policy().adaptive = False
    torch.set_num_threads(int(threads))
img = Image.open(face).convert("RGB")
times = []
with torch.inference_mode():
    if engine == "reference":
        from arasfsr.api import images_to_tensor
        from arasfsr.models.reference import reference_render
        import numpy as np
        lr = images_to_tensor(np.asarray(img)[None])
        start = time.perf_counter()
        reference_render(up.model, lr, (512, 512))
        times.append(time.perf_counter() - start)
    else:
        for i in range(warmup + repeats):
            start = time.perf_counter()
            up.upscale(img, size=(512, 512))
            if i >= warmup:
                times.append(time.perf_counter() - start)
print(json.dumps({"times_s": times, "precision": up.precision, "threads": torch.get_num_threads(),
                  "openmp": getattr(arasfsr, "OPENMP_WAIT_POLICY", "unknown"), "arasfsr": arasfsr.__file__}))
"""


def face_64(tmp: Path) -> Path:
    from PIL import Image

    data = Path(os.environ.get("ARASFSR_DATA", ROOT.parent / "shared" / "data"))
    first = sorted((data / "utkface" / "val").iterdir())[0]
    path = tmp / "face64.png"
    Image.open(first).convert("RGB").resize((64, 64), Image.BICUBIC, reducing_gap=None).save(path)
    return path


def run_child(src: Path, order: str, engine: str, args: argparse.Namespace, face: Path, tmp: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    for key in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        env.pop(key, None)
    if engine == "cli":
        out = tmp / "cli.png"
        cmd = [sys.executable, "-m", "arasfsr.cli", "upscale", str(face), "-o", str(out), "--size", "512x512",
               "--overwrite", "--precision", args.precision]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return {"times_s": times}
    cmd = [sys.executable, "-c", CHILD, order, engine, str(args.repeats), str(args.warmup), str(face), args.precision,
           str(args.threads)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=ROOT, help="the checkout whose arasfsr is measured")
    p.add_argument("--engines", default="api,reference,cli")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--busy-cores", type=int, default=0)
    p.add_argument("--precision", default="auto", help="the API's and CLI's (the reference is fp32)")
    p.add_argument("--threads", default="auto", help="a fixed torch thread count for the API (default: arasfsr's)")
    p.add_argument("--orders", default=",".join(ORDERS))
    p.add_argument("--busy-duty", type=float, default=1.0,
                   help="the busy processes spin this share of every 10 ms (default 1: all the time)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    engines = args.engines.split(",")
    rows: dict[str, dict] = {}
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp_name, busy_cores(args.busy_cores, 7200, args.busy_duty):
        tmp = Path(tmp_name)
        face = face_64(tmp)
        for _ in range(args.rounds):
            for engine in engines:
                for order in args.orders.split(",") if engine != "cli" else ("cli",):
                    key = f"{engine} {order}" if engine != "cli" else "cli"
                    got = run_child(args.src, order, engine, args, face, tmp)
                    row = rows.setdefault(key, {**{k: v for k, v in got.items() if k != "times_s"}, "times_s": []})
                    row["times_s"] += got["times_s"]
                    print(f"{key:>26}: {' '.join(f'{t:.2f}' for t in got['times_s'])} s", flush=True)
    for row in rows.values():
        row["median_s"] = statistics.median(row["times_s"])
    for order in ORDERS:
        api, ref = rows.get(f"api {order}"), rows.get(f"reference {order}")
        if api and ref:
            api["speedup_vs_reference"] = ref["median_s"] / api["median_s"]
    if "api arasfsr-first" in rows and "api torch-first" in rows:
        rows["api torch-first"]["vs_arasfsr_first"] = (rows["api torch-first"]["median_s"]
                                                     / rows["api arasfsr-first"]["median_s"])
    for key, row in rows.items():
        extra = "".join(f", {k} {row[k]:.2f}" for k in ("speedup_vs_reference", "vs_arasfsr_first") if k in row)
        print(f"{key:>26}: median {row['median_s']:.2f} s{extra}")
    if args.json:
        git = subprocess.run(["git", "-C", str(args.src), "rev-parse", "HEAD"], capture_output=True, text=True)
        write_result(args.json, {"cores": os.cpu_count(), "busy_cores": args.busy_cores, "busy_duty": args.busy_duty,
                                 "threads": args.threads, "precision": args.precision, "src": str(args.src),
                                 "src_commit": git.stdout.strip() or "unknown", "rounds": args.rounds,
                                 "repeats": args.repeats, "warmup": args.warmup, "load_average_before": load_before,
                                 "load_average_after": load_average(), "rows": rows},
                     "tools.bench.import_order", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
