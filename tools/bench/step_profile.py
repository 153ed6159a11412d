"""Where one CPU training step spends its time: PyTorch's profiler on a synthetic batch of a
config's shapes, under the trainer's bf16 autocast, with the matrix products' achieved
GFLOP/s, so you can tell what bounds the step (compute, or memory-bound element-wise work).

    python -m tools.bench.step_profile --config paper/P-arasfsr --lr-size 32 --threads 2 --json OUT

The rates are a lower bound when other work shares the machine: the profiler counts each
operator's wall time. ``--json`` records the machine, the load and the command.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from tools.bench.training_step import config_task, synthetic_batch
from tools.provenance import write_result

MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm")


def matmul_flops(name: str, shapes: list) -> float:
    """2·m·k·n of one call from its recorded input shapes (0 if they are not readable)."""
    try:
        if name == "aten::mm":
            (m, k), (_, n) = shapes[0], shapes[1]
        elif name == "aten::bmm":
            (b, m, k), (_, _, n) = shapes[0], shapes[1]
            m *= b
        else:  # addmm(bias, a, b) and addmm_(self, a, b)
            (m, k), (_, n) = shapes[1], shapes[2]
    except (TypeError, ValueError, IndexError):
        return 0.0
    return 2.0 * m * k * n


def profile_step(config: str, lr_size: int, threads: int, precision: str) -> dict:
    torch.set_num_threads(threads)
    task, cfg = config_task(config, ["train.query=projected"])
    batch = synthetic_batch(cfg["train"]["batch_size"], lr_size, cfg["data"]["sample_q"])
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, kl = task.pixels_loss(batch)
        (loss if kl is None else loss + kl).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # allocations and oneDNN's kernel choice
    t0 = time.perf_counter()
    step()
    step_s = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    total_us = sum(e.self_cpu_time_total for e in prof.key_averages())
    by_op = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    mm_flops, mm_us = 0.0, 0.0
    mm_rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key in MATMULS:
            flops = matmul_flops(e.key, e.input_shapes) * e.count
            mm_flops, mm_us = mm_flops + flops, mm_us + e.self_cpu_time_total
            mm_rows.append({"op": e.key, "shapes": e.input_shapes[:3], "calls": e.count,
                            "ms": round(e.self_cpu_time_total / 1e3, 1),
                            "gflop_per_s": round(flops / e.self_cpu_time_total / 1e3, 1) if flops else None})
    groups: dict[str, float] = defaultdict(float)
    for e in by_op:
        kind = ("matmul" if e.key in MATMULS else "convolution" if "convolution" in e.key
                else "other")
        groups[kind] += e.self_cpu_time_total
    return {
        "config": config, "lr_size": lr_size, "batch_size": cfg["train"]["batch_size"],
        "queries": cfg["data"]["sample_q"], "threads": threads, "precision": precision,
        "step_s": round(step_s, 3), "profiled_s": round(total_us / 1e6, 3),
        "share": {k: round(v / total_us, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "matmul": {"gflop": round(mm_flops / 1e9, 1), "seconds": round(mm_us / 1e6, 3),
                   "gflop_per_s": round(mm_flops / mm_us / 1e3, 1) if mm_us else None,
                   "calls": sorted(mm_rows, key=lambda r: -r["ms"])},
        "top_ops": [{"op": e.key, "calls": e.count, "ms": round(e.self_cpu_time_total / 1e3, 1),
                     "share": round(e.self_cpu_time_total / total_us, 3)} for e in by_op[:15]],
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="paper/P-arasfsr")
    ap.add_argument("--lr-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result = profile_step(args.config, args.lr_size, args.threads, args.precision)
    mm = result["matmul"]
    print(f"{args.config} LR {args.lr_size}, {args.threads} threads, {args.precision}: step {result['step_s']} s; "
          f"shares {result['share']}; matrix products {mm['gflop']} GFLOP at {mm['gflop_per_s']} GFLOP/s")
    for op in result["top_ops"][:10]:
        print(f"  {op['op']:<40} {op['calls']:>4} calls {op['ms']:>9.1f} ms {op['share']:.1%}")
    if args.json:
        write_result(args.json, result, "tools.bench.step_profile")
        print(args.json)


if __name__ == "__main__":
    main()
