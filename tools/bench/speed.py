"""Speed, peak memory and output difference of the inference engines, optionally against
another checkout of arasfsr, each measurement in a fresh process.

    python -m tools.bench.speed                          # CPU, arasfsr + liif, 4 sizes
    python -m tools.bench.speed --models arasfsr-a --sizes 64:512 --engines reference,upscale --busy-cores 1
    python -m tools.bench.speed --models arasfsr --sizes 512:1024 --engines upscale --baseline /tmp/base
    python -m tools.bench.speed --device cuda --engines reference,fast-fp32,fast-bf16
    python -m tools.bench.speed --models arasfsr --sizes 64:2048 --engines fast-fp32,fast-bf16 \
        --max-peak-gb 1.5                               # the memory bound

Engines: ``reference`` (the authors' formulation, ``models/reference.py``), ``fast-fp32``
and ``fast-bf16`` (``model.render`` at that precision), ``upscale`` (what ``load_model(name)``
does by default: the automatic precision, tiling and down-scaling policy of
``Upscaler.render``) and ``onnx``. Sizes are ``IN:OUT`` (square sides).

Each measurement is a child process, as a user starts one: it imports arasfsr before torch
(so arasfsr's threading defaults apply, as in the API and CLI), renders ``--warmup`` times,
then ``--repeats`` timed times, and reports the median seconds and its peak memory (CPU:
VmHWM, torch itself included; CUDA: max allocated). ``--rounds N`` measures every engine N
times in turn (reference, upscale, reference, upscale, ...) and pools the times: on a VM
whose speed drifts within minutes (one run's reference renders: 7.6 to 10.9 s), that keeps
the drift out of the ratios. ``--baseline DIR`` measures every
engine also with the code of another checkout DIR (e.g. ``git worktree add /tmp/base
main``), right after this one's (with ``--baseline-python``, that checkout's venv), so that old and new see the same load. ``--busy-cores N``
keeps N other processes spinning for the whole run (each stops by itself after
``--busy-seconds``). The parent never imports torch or arasfsr: a baseline child sees the
user's environment, not ours. Prints one line per measurement and the JSON (``--json OUT``)
with the machine's load average. Models without shipped weights use random weights (seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools import ROOT
from tools.bench.busy import busy_cores, load_average
from tools.provenance import write_result

ENGINES = ("reference", "fast-fp32", "fast-bf16", "upscale", "onnx")


# -- the child: one engine, one size, one checkout ------------------------------------
def child(args: argparse.Namespace) -> None:
    import arasfsr  # noqa: F401  (before torch: its threading defaults)
    import torch

    from arasfsr.api import load_model
    from arasfsr.registry import resolve

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    trained = resolve(args.model).trained
    engine = args.engine
    up = load_model(args.model, device=args.device, pretrained=trained,
                    precision="auto" if engine == "upscale" else "fp32")
    (h, out), = args.sizes
    lr = torch.rand(1, 3, h, h, generator=torch.Generator().manual_seed(1)).to(args.device)
    run = runner(up, engine, args.chunk_size)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            sync(args.device)
            t0 = time.perf_counter()
            img = run(lr, (out, out))
            sync(args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else _peak_rss_mb()
    np.save(args.output, img.float().cpu().clamp(0, 1).numpy())
    print(json.dumps({"times_s": times, "peak_mb": peak, "threads": torch.get_num_threads(),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "model": up.name,
                      "precision": getattr(up, "precision", None), "arasfsr": arasfsr.__file__}))


def runner(up, engine: str, chunk: int | None):
    import torch

    model = up.model
    if engine == "reference":
        from arasfsr.models.reference import reference_render

        return lambda lr, size: reference_render(model, lr, size)
    if engine == "onnx":
        from arasfsr.onnx_engine import OnnxEngine, export_onnx

        eng = OnnxEngine(export_onnx(model))
        return lambda lr, size: eng.render(lr, size, chunk)
    if engine == "upscale":
        return lambda lr, size: up.render(lr, size, chunk)
    precision = engine.split("-")[1]
    return torch.inference_mode()(lambda lr, size: model.render(lr, size, chunk, precision=precision))


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- the parent -----------------------------------------------------------------------
def measure(args: argparse.Namespace, model: str, engine: str, h: int, out: int, src: Path,
            tmp: Path) -> dict | None:
    output = tmp / f"{len(list(tmp.iterdir()))}.npy"
    python = args.baseline_python if src != ROOT and args.baseline_python else sys.executable
    cmd = [python, "-m", "tools.bench.speed", "--child", "--models", model, "--engines", engine,
           "--sizes", f"{h}:{out}", "--device", args.device, "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--output", str(output)]
    cmd += ["--threads", str(args.threads)] * bool(args.threads) + ["--chunk-size", str(args.chunk_size)] * bool(args.chunk_size)
    # the child imports the package of checkout `src` and these tools from this one
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode != 0:
        print(f"{model} {engine} {h}->{out} ({src}) failed:\n{res.stderr[-2000:]}", file=sys.stderr)
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    med = statistics.median(row["times_s"])
    row.update({"in": h, "out": out, "engine": engine, "code": str(src), "median_s": med,
                "mpix_per_s": out * out / 1e6 / med, "output": output})
    return row


def merge_rounds(rounds: list[dict]) -> dict:
    """One row from the rounds of one engine and checkout: all their times, the median of
    them all, the highest peak."""
    row = dict(rounds[0])
    row["times_s"] = [t for r in rounds for t in r["times_s"]]
    row["median_s"] = statistics.median(row["times_s"])
    row["mpix_per_s"] = row["out"] * row["out"] / 1e6 / row["median_s"]
    row["peak_mb"] = max(r["peak_mb"] for r in rounds)
    row["load_average"] = rounds[-1]["load_average"]
    return row


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def compare(row: dict, other: dict, key: str) -> None:
    """Speed-up of ``row`` over ``other`` and the difference of their outputs."""
    a, b = np.load(row["output"]), np.load(other["output"])
    row[f"speedup_vs_{key}"] = other["median_s"] / row["median_s"]
    if a.shape == b.shape:
        row[f"max_abs_diff_vs_{key}"] = float(np.abs(a - b).max())
        row[f"psnr_vs_{key}_db"] = psnr(a, b)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=lambda s: s.split(","), default=["arasfsr", "liif"])
    p.add_argument("--sizes", type=lambda s: [tuple(int(v) for v in x.split(":")) for x in s.split(",")],
                   default=[(16, 128), (64, 256), (64, 512), (64, 1024)], help="IN:OUT,... (square)")
    p.add_argument("--engines", type=lambda s: s.split(","), default=["reference", "fast-fp32", "fast-bf16", "onnx"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every engine this many times in turn, each a fresh process (all times pooled)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: arasfsr's choice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--chunk-size", type=int, default=None, help="fast path / ONNX (default automatic)")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="also measure every engine with the arasfsr checkout in DIR")
    p.add_argument("--baseline-python", default=None, metavar="PYTHON",
                   help="interpreter for the baseline (e.g. its checkout's .venv/bin/python)")
    p.add_argument("--busy-cores", type=int, default=0, help="keep N other processes busy during the run")
    p.add_argument("--busy-seconds", type=float, default=3600.0, help="each busy process stops after this")
    p.add_argument("--max-peak-gb", type=float, default=None, help="exit 1 if a peak exceeds this")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--output", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.model, args.engine = args.models[0], args.engines[0]
        child(args)
        return 0
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    sources = [ROOT] + ([args.baseline.resolve()] if args.baseline else [])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "") if Path("/proc/cpuinfo").exists() else ""
    env = {"device": args.device if args.device == "cuda" else f"cpu ({cpu}, {os.cpu_count()} cores)",
           "date": time.strftime("%Y-%m-%d %H:%M"), "repeats": args.repeats, "warmup": args.warmup,
           "rounds": args.rounds,
           "busy_cores": args.busy_cores, "baseline": str(args.baseline) if args.baseline else None,
           "user_env": {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ},
           "load_average_before": load_average()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, busy_cores(args.busy_cores, args.busy_seconds):
        for model in args.models:
            for h, out in args.sizes:
                runs: dict[tuple[str, str], list[dict]] = {}
                for _ in range(args.rounds):  # rounds alternate the engines, so that drift hits all alike
                    for engine in args.engines:
                        for src in sources:
                            row = measure(args, model, engine, h, out, src, Path(tmp))
                            if row is not None:
                                row["load_average"] = load_average()
                                runs.setdefault((engine, str(src)), []).append(row)
                ref = {}
                for engine in args.engines:
                    new, group = None, []
                    for src in sources:
                        if (engine, str(src)) not in runs:
                            continue
                        row = merge_rounds(runs[engine, str(src)])
                        if engine == "reference":
                            ref[str(src)] = row
                        elif str(src) in ref:
                            compare(row, ref[str(src)], "reference")
                        if src == ROOT:
                            new = row
                        elif new is not None:
                            compare(new, row, "baseline")
                        group.append(row)
                    for row in group:
                        print(_line(row), flush=True)
                    rows += group
        for row in rows:
            row.pop("output")
    env["load_average_after"] = load_average()
    result = {"env": env, "rows": rows}
    print(json.dumps(result, indent=1))
    if args.json:
        write_result(args.json, result, __spec__.name, argv, indent=1)
    if args.max_peak_gb is not None:
        over = [r for r in rows if r["peak_mb"] > args.max_peak_gb * 1024]
        if over:
            print(f"peak memory above {args.max_peak_gb} GB: {[(r['engine'], r['out']) for r in over]}")
            return 1
    return 0


def _line(r: dict) -> str:
    code = "baseline" if r["code"] != str(ROOT) else "this"
    extra = "".join(f"  {key}: x{r['speedup_vs_' + key]:.2f}, PSNR {r.get(f'psnr_vs_{key}_db', float('nan')):.1f}"
                    for key in ("reference", "baseline") if f"speedup_vs_{key}" in r)
    return (f"{r['model']:<10} {r['in']:>4}->{r['out']:<5} {r['engine']:<10} {code:<8} {r['median_s']:8.3f} s "
            f"{r['mpix_per_s']:7.3f} MP/s  peak {r['peak_mb']:6.0f} MB  {r['threads']} threads  "
            f"load {r['load_average'][0]:.1f}{extra}")


if __name__ == "__main__":
    sys.exit(main())
