"""LIIF (Chen et al., CVPR 2021): local implicit image function.

Unfolded EDSR/RDN codes, relative coordinate and cell size into a 256x4 ReLU MLP,
with the 4-neighbour local ensemble. The cell is LIIF's own: the output pixel size in
LR-pixel units times 2, i.e. ``2 r`` with the paper's ``r``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures import register_model
from .core import Encoded, ImplicitSR, Neighbour, Queries
from .encoders import encoder_presets, encoder_tiers, make_encoder
from .mlp import MLP


@register_model(presets=encoder_presets("liif", "LIIF"),
                tiers=encoder_tiers(cpu={"hidden": [64, 64, 64]}, smoke={"hidden": [16, 16]}))
class LIIF(ImplicitSR):
    arch = "liif"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: Mapping[str, Any] = MappingProxyType({}),
                 hidden: Sequence[int] = (256, 256, 256, 256)) -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        self.imnet = MLP(self.encoder.out_dim * 9 + 2 + 2, 3, hidden)

    def encode(self, lr: Tensor) -> Encoded:
        return Encoded(self.encoder(lr))

    def neighbour_inputs(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        return torch.cat([nb.rel_coord, 2 * ctx.ratio.expand_as(nb.rel_coord)], dim=-1)

    def decode(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        return self.imnet(torch.cat([nb.feat, self.neighbour_inputs(state, nb, ctx)], dim=-1))

    # Fast path: the first layer's code part becomes a 3x3 conv over the LR features.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: Queries) -> Tensor:
        return self.imnet.forward_hidden(hidden)
