"""Where one default render spends its time: torch.profiler's operators by self CPU time.

    python -m tools.bench.profile_render                                # arasfsr, 512x512 -> 1024x1024
    python -m tools.bench.profile_render --model arasfsr-a --sizes 64:512

Renders a random input once to warm up, then once under the profiler, as
``load_model(model).render`` does by default (the automatic precision), and prints the
operators that took the most time with their share of the total.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="arasfsr")
    p.add_argument("--sizes", default="512:1024", help="IN:OUT (square sides)")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    import arasfsr  # before torch: its threading defaults
    import torch
    from torch.profiler import ProfilerActivity, profile

    h, out = (int(v) for v in args.sizes.split(":"))
    up = arasfsr.load_model(args.model)
    lr = torch.rand(1, 3, h, h, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        up.render(lr, (out, out))
        t0 = time.perf_counter()
        up.render(lr, (out, out))
        plain = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            up.render(lr, (out, out))
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.model} {h}->{out}: {plain:.2f} s without the profiler, {total / 1e6:.2f} s of operators under it")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"{e.key:34s} {e.self_cpu_time_total / 1e3:9.1f} ms {100 * e.self_cpu_time_total / total:5.1f} %"
              f" {e.count:7d} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
