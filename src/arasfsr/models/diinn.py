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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core import ImplicitSR, Neighbour
from .encoders import make_encoder


class DIINN(ImplicitSR):
    arch = "diinn"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 hidden: list[int] | None = None, local_ensemble: bool = False) -> None:
        hidden = list(hidden or [256, 256, 256, 256])
        super().__init__(encoder=encoder, encoder_args=dict(encoder_args or {}), hidden=hidden,
                         local_ensemble=local_ensemble)
        self.encoder = make_encoder(encoder, **(encoder_args or {}))
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

    def encode(self, lr: Tensor) -> dict[str, Tensor]:
        return {"feat": self.encoder(lr)}

    def query_context(self, state: dict[str, Tensor], coord: Tensor, ratio: Tensor) -> dict[str, Tensor]:
        ctx = super().query_context(state, coord, ratio)
        ctx["area"] = ratio.prod(dim=-1, keepdim=True)  # (h w) / (H W)
        return ctx

    def neighbour_inputs(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        """The synthesis branch's input ``p``."""
        return torch.cat([nb.rel_coord, ctx["area"].expand(*nb.rel_coord.shape[:-1], 1)], dim=-1)

    def decode(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
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

    def project(self, state: dict[str, Tensor], dtype: torch.dtype = torch.float32) -> None:
        n_code = self.code_dim(state["feat"])
        weight = torch.cat([layer.weight[:, layer.in_features - n_code:] for layer in self.content])
        first = self.content[0].bias  # later biases go with their s part (decode_hidden)
        bias = torch.cat([first, first.new_zeros(weight.shape[0] - first.shape[0])])
        state["proj"] = self.project_codes(state["feat"], weight, bias).to(dtype)

    def neighbour_hidden(self, state: dict[str, Tensor], rows: Tensor, nb: Neighbour, ctx: dict[str, Tensor],
                         dtype: torch.dtype) -> Tensor:
        # sin(Q_0 p), per neighbour, its argument in fp32; decode_hidden reads it from ctx.
        ctx["sin0"] = torch.sin(self.position[0](self.neighbour_inputs(state, nb, ctx))).to(dtype)
        return rows

    def decode_hidden(self, state: dict[str, Tensor], hidden: Tensor, ctx: dict[str, Tensor]) -> Tensor:
        k0, *codes = hidden.split([layer.out_features for layer in self.content], dim=-1)
        s = k0.relu() * ctx["sin0"]
        for k_layer, q_layer, code in zip(self.content[1:], self.position[1:], codes):
            weight = torch.cat([k_layer.weight[:, :s.shape[-1]], q_layer.weight])
            pre = F.linear(s, weight, torch.cat([k_layer.bias, q_layer.bias]))
            k, q = pre.split([k_layer.out_features, q_layer.out_features], dim=-1)
            s = (k + code).relu_() * torch.sin(q)
        return self.out(s)
