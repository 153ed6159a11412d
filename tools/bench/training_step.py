"""A config's training task and a synthetic batch of its shapes, for the benchmarks that
look at one training step without data (graph_breaks.py, train_flops.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arasfsr.models import create_model
from arasfsr.training import load_config
from arasfsr.training.config import model_spec
from arasfsr.training.module import SRTask


def config_task(config: str, overrides: Sequence[str] = (), channels_last: bool = False) -> tuple[SRTask, dict[str, Any]]:
    """A fresh model of ``config`` (with ``--set``-style ``overrides``) in its training module, and the config."""
    cfg = load_config(config, list(overrides))
    arch, model_args = model_spec(cfg)
    model = create_model(arch, **model_args)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        cfg["train"] = {**cfg["train"], "channels_last": True}
    return SRTask(model, cfg["train"]), cfg


def synthetic_batch(faces: int, lr_size: int, queries: int) -> dict[str, torch.Tensor]:
    """Random LR faces, query coordinates, a x2 scale ratio and targets: shapes only matter."""
    return {"lr": torch.rand(faces, 3, lr_size, lr_size), "coord": torch.rand(faces, queries, 2) * 2 - 1,
            "ratio": torch.full((faces, 2), 0.5), "gt": torch.rand(faces, queries, 3)}
