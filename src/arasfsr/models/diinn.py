"""DIINN (Nguyen & Beksi, WACV 2023): dual interactive implicit neural network.

The decoder has two branches of equal widths. The *modulation* (content) branch reads
the unfolded latent code with ReLU layers; the *synthesis* (positional) branch reads
the relative coordinate and the scale with sine layers. They interact at every layer:

    k_0 = relu(K_0 z)                   s_0 = k_0 * sin(Q_0 p)
    k_i = relu(K_i [s_{i-1}, z])        s_i = k_i * sin(Q_i s_{i-1})
    rgb = W s_L

with ``z`` the 3x3-unfolded code and ``p = (delta_y, delta_x, h w / (H W))``.

Follows their code for the final model ("model (f)", ``mode=3, init_q=False``): the
content branch sees the previous synthesis output concatenated with ``z``; the scale
input is ONE number, the LR-to-output area ratio; hidden widths 256 x 4; default
PyTorch initialisation (no SIREN init); no bilinear skip. Like the paper ("locally
continuous ... with respect to the nearest LR pixel") it decodes from the nearest
code only (``local_ensemble=False``); ``local_ensemble=True`` uses the core's
4-neighbour area-weighted ensemble instead, as LIIF does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import register_model
from .core import Encoded, ImplicitSR, Neighbour, Queries
from .encoders import encoder_presets, encoder_tiers, make_encoder


@dataclass
class AreaQueries(Queries):
    area: Tensor | None = None  # (B,Q,1) the LR-to-output area ratio (h w) / (H W)


@register_model(presets=encoder_presets("diinn", "DIINN"),
                tiers=encoder_tiers(cpu={"hidden": [64, 64, 64]}, smoke={"hidden": [16, 16]}))
class DIINN(ImplicitSR):
    arch = "diinn"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: Mapping[str, Any] = MappingProxyType({}),
                 hidden: Sequence[int] = (256, 256, 256, 256), local_ensemble: bool = False) -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        self.local_ensemble = local_ensemble
        code_dim = self.encoder.out_dim * 9
        self.content = nn.ModuleList()
        self.position = nn.ModuleList()
        k_in, q_in = code_dim, 3
        for width in hidden:
            self.content.append(nn.Linear(k_in, width))
            self.position.append(nn.Linear(q_in, width))
            k_in, q_in = width + code_dim, width
        self.out = nn.Linear(hidden[-1], 3)

    def encode(self, lr: Tensor) -> Encoded:
        return Encoded(self.encoder(lr))

    def query_context(self, state: Encoded, coord: Tensor, ratio: Tensor) -> AreaQueries:
        return AreaQueries(coord, ratio, area=ratio.prod(dim=-1, keepdim=True))

    def neighbour_inputs(self, state: Encoded, nb: Neighbour, ctx: AreaQueries) -> Tensor:
        """The synthesis branch's input ``p``."""
        return torch.cat([nb.rel_coord, ctx.area.expand(*nb.rel_coord.shape[:-1], 1)], dim=-1)

    def decode(self, state: Encoded, nb: Neighbour, ctx: AreaQueries) -> Tensor:
        z = nb.feat
        p = self.neighbour_inputs(state, nb, ctx)
        s = None
        for k_layer, q_layer in zip(self.content, self.position):
            if s is None:
                k = torch.relu(k_layer(z))
                s = k * torch.sin(q_layer(p))
            else:
                k = torch.relu(k_layer(torch.cat([s, z], dim=-1)))
                s = k * torch.sin(q_layer(s))
        return self.out(s)

    # Fast path: the code part of every content layer (K_0 z, and the z columns of
    # K_i [s, z]) is one 3x3 convolution per LR position, gathered per query; per query
    # and neighbour remain only the products with s, one [K_i^s; Q_i] product per layer.
    def first_layer(self) -> nn.Linear:
        return self.content[0]

    def project(self, state: Encoded, dtype: torch.dtype = torch.float32) -> None:
        n_code = self.code_dim(state.feat)
        weight = torch.cat([layer.weight[:, layer.in_features - n_code:] for layer in self.content])
        first = self.content[0].bias  # later biases go with their s part (decode_hidden)
        bias = torch.cat([first, first.new_zeros(weight.shape[0] - first.shape[0])])
        state.proj = self.project_codes(state.feat, weight, bias).to(dtype)

    def neighbour_hidden(self, state: Encoded, rows: Tensor, nb: Neighbour, ctx: AreaQueries,
                         dtype: torch.dtype) -> Tensor:
        return rows

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: AreaQueries) -> Tensor:
        # sin(Q_0 p) per neighbour, its argument in fp32 whatever the hidden layers' dtype.
        with torch.autocast(hidden.device.type, enabled=False):
            sin0 = torch.sin(self.position[0](self.neighbour_inputs(state, nb, ctx))).to(hidden.dtype)
        k0, *codes = hidden.split([layer.out_features for layer in self.content], dim=-1)
        s = k0.relu() * sin0
        for k_layer, q_layer, code in zip(self.content[1:], self.position[1:], codes):
            weight = torch.cat([k_layer.weight[:, :s.shape[-1]], q_layer.weight])
            pre = F.linear(s, weight, torch.cat([k_layer.bias, q_layer.bias]))
            k, q = pre.split([k_layer.out_features, q_layer.out_features], dim=-1)
            s = (k + code).relu_() * torch.sin(q)
        return self.out(s)
