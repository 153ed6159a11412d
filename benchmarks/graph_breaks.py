"""How torch.compile sees a config's training forward (the loss that ``train.compile``
compiles): the number of graphs and the graph breaks, with where they come from. One graph
and no breaks means CUDA graphs (``train.compile=reduce-overhead``) can replay it whole.

    python benchmarks/graph_breaks.py --config paper/A-arasfsr
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from arasfsr.models import create_model  # noqa: E402
from arasfsr.training import load_config  # noqa: E402
from arasfsr.training.config import model_spec  # noqa: E402
from arasfsr.training.module import SRTask  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="paper/A-arasfsr")
    ap.add_argument("--batch", type=int, default=2, help="faces (the graph does not depend on it)")
    args = ap.parse_args()
    import torch._dynamo as dynamo

    cfg = load_config(args.config)
    arch, model_args = model_spec(cfg)
    model = create_model(arch, **model_args).to(memory_format=torch.channels_last)
    task = SRTask(model, {**cfg["train"], "channels_last": True})
    lr_size = cfg["data"]["lr_size"]
    lr_size = max(lr_size) if isinstance(lr_size, list) else lr_size
    q = cfg["data"]["sample_q"] or 2304
    batch = {"lr": torch.rand(args.batch, 3, lr_size, lr_size), "coord": torch.rand(args.batch, q, 2) * 2 - 1,
             "ratio": torch.full((args.batch, 2), 0.5), "gt": torch.rand(args.batch, q, 3)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        found = dynamo.explain(task.pixels_loss)(batch)
    print(f"{args.config}: {found.graph_count} graph(s), {found.graph_break_count} break(s)")
    for reason in found.break_reasons:
        print("-", reason.reason.splitlines()[0], reason.user_stack[-1] if reason.user_stack else "")


if __name__ == "__main__":
    main()
