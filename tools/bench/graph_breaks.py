"""How torch.compile sees a config's training forward (the loss that ``train.compile``
compiles): the number of graphs and the graph breaks, with where they come from. One graph
and no breaks means CUDA graphs (``train.compile=reduce-overhead``) can replay it whole.

    python -m tools.bench.graph_breaks --config paper/A-arasfsr
"""

from __future__ import annotations

import argparse

import torch

from tools.bench.training_step import config_task, synthetic_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="paper/A-arasfsr")
    ap.add_argument("--batch", type=int, default=2, help="faces (the graph does not depend on it)")
    args = ap.parse_args()
    import torch._dynamo as dynamo

    task, cfg = config_task(args.config, channels_last=True)
    lr_size = cfg["data"]["lr_size"]
    lr_size = max(lr_size) if isinstance(lr_size, list) else lr_size
    batch = synthetic_batch(args.batch, lr_size, cfg["data"]["sample_q"] or 2304)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        found = dynamo.explain(task.pixels_loss)(batch)
    print(f"{args.config}: {found.graph_count} graph(s), {found.graph_break_count} break(s)")
    for reason in found.break_reasons:
        print("-", reason.reason.splitlines()[0], reason.user_stack[-1] if reason.user_stack else "")


if __name__ == "__main__":
    main()
