"""The fast decoder's CPU switches one at a time: kept freed memory, fused layers, chunk size,
the modulations' layout.

    python -m tools.bench.decoder_ab                  # arasfsr-a, one 64x64 face to 512x512
    python -m tools.bench.decoder_ab --busy-cores 1   # with another process keeping a core busy

Each line is a fresh process that renders with ``Upscaler.render`` (the default precision)
after one warm-up, ``--repeats`` times, alternating the two settings it compares, and
prints the median seconds, the system CPU seconds and the minor page faults per render:

- ``memory``: glibc's default malloc (``MALLOC_TRIM_THRESHOLD_`` set to glibc's default,
  so ``runtime.keep_freed_memory`` leaves malloc alone) against the package's setting;
- ``fused``: the hidden layers' products with bias and ReLU fused (``models/fused.py``)
  against the plain ops, in one process;
- ``chunk``: queries per chunk 2,048, 4,096 (the bf16 default) and 8,192, in one process;
- ``layout``: the sine modulations per row and per column of the chunk's grid (the
  default), per query layer-major (each layer's a contiguous block, one product per
  layer), and per query as column slices of one (queries x layers*hidden) product, whose
  rows the 4-neighbour multiply then reads with a stride (the layout before), in one process.

Every line also gives the PSNR of the output against an fp32 render of the same input (a
``utkface/val`` face shrunk to 64x64, ``--face``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from tools import ROOT
from tools.bench.busy import busy_cores, load_average
from tools.provenance import write_result

FACE = ROOT.parent / "shared" / "data" / "utkface" / "val"
FACE = min(FACE.glob("*.jpg"), default=FACE)

CHILD = r"""
import json, math, resource, statistics, sys, time
import arasfsr  # before torch, as the API and CLI are used: its threading defaults apply
import torch
from arasfsr.models import fused
from arasfsr.models.arasfsr import ARASFSR
from arasfsr.models.modulation import ModulatedMLP

model, size, repeats, variants, face = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5]
up = arasfsr.load_model(model)
if face:
    import numpy as np
    from PIL import Image
    img = Image.open(face).convert("RGB").resize((64, 64), Image.BICUBIC)
    lr = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
else:
    lr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
plain_fusable = fused.fusable
grid_context, layer_major = ARASFSR.fast_context, ModulatedMLP.modulations

def per_query_context(self, state, ctx, dtype):  # the modulations of every query, not per row and column
    ctx.grid = None
    return grid_context(self, state, ctx, dtype)

def sliced(self, g, dtype=None):  # the layout before layer-major: column slices of one product
    g1 = torch.cat([g, g.new_ones(*g.shape[:-1], 1)], dim=-1)
    weights = [torch.cat([m.weight, m.bias[:, None]], dim=1) for m in self.mods]
    pre = torch.matmul(g1, torch.cat(weights).t())
    return list(self._sine(pre, dtype).split([w.shape[0] for w in weights], -1))

def setting(name):
    fused.fusable = plain_fusable if name != "plain" else (lambda x, post_op="none": False)
    ARASFSR.fast_context = per_query_context if name in ("per-query", "sliced") else grid_context
    ModulatedMLP.modulations = sliced if name == "sliced" else layer_major
    return int(name) if name.isdigit() else None  # a chunk size, or the default

stats = {v: {"s": [], "sys": [], "faults": [], "psnr_vs_fp32": []} for v in variants}
with torch.inference_mode():
    fp32 = up.model.render(lr, (size, size), precision="fp32").clamp(0, 1)
    up.render(lr, (size, size))
    for _ in range(repeats):
        for v in variants:
            chunk = setting(v)
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            out = up.render(lr, (size, size), chunk)
            t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            mse = float(((out.clamp(0, 1) - fp32) ** 2).mean())
            stats[v]["psnr_vs_fp32"].append(10 * math.log10(1 / mse) if mse else float("inf"))
            stats[v]["s"].append(t1 - t0)
            stats[v]["sys"].append(r1.ru_stime - r0.ru_stime)
            stats[v]["faults"].append(r1.ru_minflt - r0.ru_minflt)
print(json.dumps({v: {k: statistics.median(x) for k, x in d.items()} for v, d in stats.items()}))
"""


def run(args: argparse.Namespace, variants: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(args.size), str(args.repeats), ",".join(variants),
                          str(args.face or "")],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="arasfsr-a")
    p.add_argument("--size", type=int, default=512, help="output side (the input is 64x64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--busy-cores", type=int, default=0)
    p.add_argument("--busy-seconds", type=float, default=1800.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--parts", default="memory,fused,chunk,layout", help="which comparisons, comma separated")
    p.add_argument("--face", type=Path, default=FACE if FACE.exists() else None,
                   help="the image shrunk to 64x64 as the input (default: a utkface/val face; random without it)")
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    default_malloc = dict(env, MALLOC_TRIM_THRESHOLD_="131072")  # glibc's default: keep_freed_memory steps aside
    results = {"model": args.model, "size": args.size, "busy_cores": args.busy_cores, "load_before": load_average()}
    parts = args.parts.split(",")
    with busy_cores(args.busy_cores, args.busy_seconds):
        if "memory" in parts:
            memory = {}
            for _ in range(args.repeats):  # alternate the two processes
                for name, e in (("glibc default", default_malloc), ("kept", env)):
                    one = run(argparse.Namespace(**{**vars(args), "repeats": 1}), ["fused"], e)["fused"]
                    memory.setdefault(name, []).append(one)
            results["memory"] = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in memory.items()}
        if "fused" in parts:
            results["fused"] = run(args, ["fused", "plain"], env)
        if "chunk" in parts:
            results["chunk"] = run(args, ["2048", "4096", "8192"], env)
        if "layout" in parts:
            results["layout"] = run(args, ["grid", "per-query", "sliced"], env)
    results["load_after"] = load_average()
    for part in parts:
        for name, r in results[part].items():
            print(f"{part:7s} {name:14s} {r['s']:7.3f} s  sys {r['sys']:5.2f} s  {int(r['faults']):>9,} page faults  "
                  f"PSNR vs fp32 {r['psnr_vs_fp32']:.2f} dB")
    print(f"{args.busy_cores} busy cores; load average {results['load_before']} before, {results['load_after']} after")
    if args.json:
        write_result(args.json, results, __spec__.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
