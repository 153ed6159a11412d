"""Reference vs fast path (vs ONNX) on the same weights and inputs, in one process.

    python benchmarks/speed.py                          # CPU, arasfsr + liif, 4 sizes
    python benchmarks/speed.py --device cuda --engines reference,fast-fp32,fast-bf16
    python benchmarks/speed.py --models arasfsr --sizes 64:2048 --engines fast-fp32,fast-bf16 \
        --max-peak-gb 1.5                               # the memory bound

Prints a table and JSON (``--json OUT``): median seconds over ``--repeats`` runs after
``--warmup``, output megapixels per second, peak memory (CPU: max RSS of a fresh
subprocess doing one render, torch itself included; CUDA: max allocated), the speed-up
over the reference and the difference from the reference output (max abs, PSNR).
Models without shipped weights use random weights (seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from arasfsr.api import load_model  # noqa: E402
from arasfsr.models.reference import reference_render  # noqa: E402
from arasfsr.registry import resolve  # noqa: E402

ENGINES = ("reference", "fast-fp32", "fast-bf16", "onnx")


def build(name: str, device: str):
    """A model by name or path (:func:`arasfsr.registry.resolve`); presets and architecture
    names (their default config: the EDSR-baseline one) get random weights."""
    torch.manual_seed(0)
    trained = resolve(name).trained
    up = load_model(name, device=device, pretrained=trained, precision="fp32")
    return up.model.eval(), up.name, trained


def runner(model, engine: str, device: str, chunk: int | None):
    if engine == "reference":
        return lambda lr, size: reference_render(model, lr, size)
    if engine == "onnx":
        from arasfsr.onnx_engine import OnnxEngine, export_onnx

        eng = OnnxEngine(export_onnx(model))
        return lambda lr, size: eng.render(lr, size, chunk)
    precision = engine.split("-")[1]
    return lambda lr, size: model.render(lr, size, chunk, precision=precision)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def child(args: argparse.Namespace) -> None:
    """One render in a fresh process; prints its peak memory."""
    torch.set_num_threads(args.threads)
    model, _, _ = build(args.models[0], args.device)
    (h, out), = args.sizes
    lr = torch.rand(1, 3, h, h, generator=torch.Generator().manual_seed(1)).to(args.device)
    run = runner(model, args.engines[0], args.device, args.chunk_size)
    before = _peak_rss_mb()
    with torch.inference_mode():
        run(lr, (out, out))
    peak = _peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "before_render_mb": before}))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(model_name: str, engine: str, h: int, out: int, args: argparse.Namespace) -> float | None:
    if args.device == "cuda":
        return None  # measured in-process
    cmd = [sys.executable, __file__, "--child", "--models", model_name, "--engines", engine,
           "--sizes", f"{h}:{out}", "--threads", str(args.threads), "--device", args.device]
    if args.chunk_size:
        cmd += ["--chunk-size", str(args.chunk_size)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=lambda s: s.split(","), default=["arasfsr", "liif"])
    p.add_argument("--sizes", type=lambda s: [tuple(int(v) for v in x.split(":")) for x in s.split(",")],
                   default=[(16, 128), (64, 256), (64, 512), (64, 1024)], help="IN:OUT,... (square)")
    p.add_argument("--engines", type=lambda s: s.split(","), default=list(ENGINES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--chunk-size", type=int, default=None, help="fast path / ONNX (default automatic)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--max-peak-gb", type=float, default=None, help="exit 1 if a peak exceeds this")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    torch.set_num_threads(args.threads)
    engines = [e for e in args.engines if e in ENGINES]
    if "onnx" in engines:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            engines.remove("onnx")
        if args.device == "cuda":
            engines.remove("onnx")
    rows = []
    cpu = "" if args.device == "cuda" else (open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" :\t")
                                            if Path("/proc/cpuinfo").exists() else "")
    env = {"device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({cpu})",
           "threads": args.threads, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
           "repeats": args.repeats, "warmup": args.warmup}
    for name in args.models:
        model, resolved, trained = build(name, args.device)
        for h, out in args.sizes:
            lr = torch.rand(1, 3, h, h, generator=torch.Generator().manual_seed(1)).to(args.device)
            ref_out, ref_time = None, None
            for engine in engines:
                run = runner(model, engine, args.device, args.chunk_size)
                times = []
                if args.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    for i in range(args.warmup + args.repeats):
                        sync(args.device)
                        t0 = time.perf_counter()
                        img = run(lr, (out, out))
                        sync(args.device)
                        if i >= args.warmup:
                            times.append(time.perf_counter() - t0)
                img = img.float().cpu().clamp(0, 1)
                med = statistics.median(times)
                row = {"model": resolved, "trained": trained, "in": h, "out": out, "engine": engine,
                       "median_s": med, "mpix_per_s": out * out / 1e6 / med, "times_s": times}
                if args.device == "cuda":
                    row["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
                elif not args.no_memory:
                    row["peak_mb"] = peak_memory(name, engine, h, out, args)
                if engine == "reference":
                    ref_out, ref_time = img, med
                if ref_out is not None:
                    row["speedup"] = ref_time / med
                    row["max_abs_diff"] = float((img - ref_out).abs().max())
                    row["psnr_vs_ref_db"] = psnr(img, ref_out)
                rows.append(row)
                print(_line(row), flush=True)
    print(json.dumps({"env": env, "rows": rows}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    if args.max_peak_gb is not None:
        over = [r for r in rows if r.get("peak_mb") and r["peak_mb"] > args.max_peak_gb * 1024]
        if over:
            print(f"peak memory above {args.max_peak_gb} GB: {[(r['engine'], r['out']) for r in over]}")
            return 1
    return 0


def _line(r: dict) -> str:
    peak = f"{r['peak_mb']:7.0f}" if r.get("peak_mb") else "      -"
    extra = ""
    if "speedup" in r:
        extra = f"  x{r['speedup']:5.2f}  maxdiff {r['max_abs_diff']:.1e}  PSNR {r['psnr_vs_ref_db']:6.1f}"
    return (f"{r['model']:<10} {r['in']:>3}->{r['out']:<5} {r['engine']:<10} {r['median_s']:8.3f} s "
            f"{r['mpix_per_s']:7.3f} MP/s  peak {peak} MB{extra}")


if __name__ == "__main__":
    sys.exit(main())
