"""LIIF (Chen et al., CVPR 2021): local implicit image function.

Unfolded EDSR/RDN codes, relative coordinate and cell size into a 256x4 ReLU MLP,
with the 4-neighbour local ensemble. The cell is LIIF's own: the output pixel size in
LR-pixel units times 2, i.e. ``2 r`` with the paper's ``r``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .core import ImplicitSR, Neighbour
from .encoders import make_encoder
from .mlp import MLP


class LIIF(ImplicitSR):
    arch = "liif"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 hidden: list[int] | None = None) -> None:
        hidden = list(hidden or [256, 256, 256, 256])
        super().__init__(encoder=encoder, encoder_args=dict(encoder_args or {}), hidden=hidden)
        self.encoder = make_encoder(encoder, **(encoder_args or {}))
        self.imnet = MLP(self.encoder.out_dim * 9 + 2 + 2, 3, hidden)

    def encode(self, lr: Tensor) -> dict[str, Tensor]:
        return {"feat": self.encoder(lr)}

    def neighbour_inputs(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        return torch.cat([nb.rel_coord, 2 * ctx["ratio"].expand_as(nb.rel_coord)], dim=-1)

    def decode(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        return self.imnet(torch.cat([nb.feat, self.neighbour_inputs(state, nb, ctx)], dim=-1))

    # Fast path: the first layer's code part becomes a 3x3 conv over the LR features.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def decode_hidden(self, state: dict[str, Tensor], hidden: Tensor, ctx: dict[str, Tensor]) -> Tensor:
        return self.imnet.forward_hidden(hidden)
