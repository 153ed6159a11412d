"""Floating-point work of one training step (forward + backward), counted by PyTorch's
``FlopCounterMode``, for each ``train.query``: what bounds the samples/s any trainer can reach.

    python benchmarks/train_flops.py --configs paper/A-arasfsr,paper/P-arasfsr --lr-sizes 64,16

A synthetic batch of the config's size (``train.batch_size`` faces of ``--lr-sizes`` pixels a
side, ``data.sample_q`` queries each): the count depends on shapes only. ``--it-per-s R``
adds the sustained TFLOP/s that R steps per second would need. Prints a Markdown table;
``--json OUT``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from arasfsr.models import create_model  # noqa: E402
from arasfsr.training import load_config  # noqa: E402
from arasfsr.training.config import model_spec  # noqa: E402
from arasfsr.training.module import SRTask  # noqa: E402


def step_flops(config: str, lr_size: int, query: str) -> dict[str, float]:
    cfg = load_config(config, [f"train.query={query}"])
    arch, model_cfg = model_spec(cfg)
    torch.manual_seed(0)
    model = create_model(arch, **model_cfg)
    task = SRTask(model, cfg["train"])
    b, q = cfg["train"]["batch_size"], cfg["data"]["sample_q"]
    batch = {"lr": torch.rand(b, 3, lr_size, lr_size), "coord": torch.rand(b, q, 2) * 2 - 1,
             "ratio": torch.full((b, 2), 0.5), "gt": torch.rand(b, q, 3)}
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
    torch.set_num_threads(max(1, torch.get_num_threads()))
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
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
