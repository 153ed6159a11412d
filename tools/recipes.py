"""Training recipes the development tools derive from a resolved config."""

from __future__ import annotations

from typing import Any


def scaled_to_batch(train: dict[str, Any], factor: float, lr: float | None = None) -> list[str]:
    """``--set`` overrides that train ``factor`` times the batch of ``train`` (a resolved
    config's train section) with the same recipe per face: the rate ``lr``, by default scaled
    linearly with the batch, the warm-up over the same faces, and an EMA whose horizon covers
    the same faces (1 - decay scaled by ``factor``). ``tools.bench.batch_scaling`` measures
    it (``benchmarks/results/batch-scaling/``): it kept the learning per face of cpu-tier
    fine-tunes at 4x the batch, but a short paper-tier fine-tune of the default model lost
    more at 4x the rate."""
    sets = [f"train.batch_size={round(train['batch_size'] * factor)}",
            f"train.lr={train['lr'] * factor if lr is None else lr:g}"]
    if train["warmup"]:
        sets.append(f"train.warmup={max(1, round(train['warmup'] / factor))}")
    if train["ema_decay"] is not None:
        sets.append(f"train.ema_decay={1 - (1 - train['ema_decay']) * factor:g}")
    return sets
