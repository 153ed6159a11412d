"""An exponential moving average (EMA) of a model's weights: what training exports.

The average is a frozen copy of the model (a sub-module of the task, so Lightning's
checkpoints save and restore it with everything else: a resumed run continues the very
same average). After optimiser step ``t`` (0-based) every parameter moves towards the
trained one by ``1 - d_t`` with ``d_t = min(decay, (1 + t) / (10 + t))``: the warm-up
keeps a fresh run's average from clinging to the random initialisation. Buffers
(BatchNorm statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    return min(decay, (1.0 + step) / (10.0 + step))


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the average."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move ``ema`` towards ``model`` after optimiser step ``step`` (few fused kernels)."""
    weight = 1.0 - ema_decay_at(decay, step)
    ema_params = [p for p in ema.parameters()]
    params = [p.detach() for p in model.parameters()]
    if ema_params:
        torch._foreach_lerp_(ema_params, params, weight)
    for mine, theirs in zip(ema.buffers(), model.buffers()):
        mine.copy_(theirs)
