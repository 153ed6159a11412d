"""Floating-point work of one training step (forward + backward), counted by PyTorch's
``FlopCounterMode``, for each ``train.query``: what bounds the samples/s any trainer can reach.

    python -m tools.bench.train_flops --configs paper/A-arasfsr,paper/P-arasfsr --lr-sizes 64,16

A synthetic batch of the config's size (``train.batch_size`` faces of ``--lr-sizes`` pixels a
side, ``data.sample_q`` queries each): the count depends on shapes only. ``--it-per-s R``
adds the sustained TFLOP/s that R steps per second would need. Prints a Markdown table;
``--json OUT``.
"""

from __future__ import annotations

import argparse

from torch.utils.flop_counter import FlopCounterMode

from tools.bench.training_step import config_task, synthetic_batch
from tools.provenance import write_result


def step_flops(config: str, lr_size: int, query: str) -> dict[str, float]:
    task, cfg = config_task(config, [f"train.query={query}"])
    b, q = cfg["train"]["batch_size"], cfg["data"]["sample_q"]
    batch = synthetic_batch(b, lr_size, q)
    counter = FlopCounterMode(display=False)
    with counter:
        loss, kl = task.pixels_loss(batch)
        (loss if kl is None else loss + kl).backward()
    return {"config": config, "query": query, "lr_size": lr_size, "batch_size": b, "queries": q,
            "tflop_per_step": counter.get_total_flops() / 1e12}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="paper/A-arasfsr")
    ap.add_argument("--lr-sizes", default="64", help="comma list of LR sides")
    ap.add_argument("--queries", default="gathered,projected")
    ap.add_argument("--it-per-s", type=float, default=None, help="a target step rate")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [step_flops(c, int(s), qm) for c in args.configs.split(",") for s in args.lr_sizes.split(",")
            for qm in args.queries.split(",")]
    extra = f" | TFLOP/s at {args.it_per_s:g} it/s" if args.it_per_s else ""
    print(f"| config | LR | batch x queries | train.query | TFLOP per step{extra} |")
    print("|---|---:|---|---|---:|" + ("---:|" if extra else ""))
    for r in rows:
        need = f" | {r['tflop_per_step'] * args.it_per_s:.0f}" if args.it_per_s else ""
        print(f"| {r['config']} | {r['lr_size']} | {r['batch_size']} x {r['queries']} | {r['query']} | "
              f"{r['tflop_per_step']:.3f}{need} |")
    if args.json:
        write_result(args.json, {"rows": rows}, __spec__.name)


if __name__ == "__main__":
    main()
