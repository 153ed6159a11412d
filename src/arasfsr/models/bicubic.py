"""Bicubic interpolation behind the model interface: the trivial baseline.

Uses PyTorch's anti-aliased bicubic, which is the same kernel as Pillow's (a = -0.5),
so it also down-scales well and matches the bicubic of the evaluation protocols.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..architectures import register_model
from .core import SuperResolver


def bicubic_resize(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """(B,C,h,w) in [0,1] -> (B,C,H,W) at ``size = (H, W)``, up or down, clamped to [0,1]."""
    return F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@register_model()
class Bicubic(SuperResolver):
    """Needs no weights. The package ships it as ``weights/bicubic.safetensors`` (no
    tensors, the architecture in the metadata) so that the torch-free listing shows it
    with the trained models; without that file the name still resolves to this class."""

    arch = "bicubic"
    needs_weights = False

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None, *,
               precision: str | None = None, fast: bool = True) -> Tensor:
        return bicubic_resize(lr, size)
