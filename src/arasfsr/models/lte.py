"""LTE (Lee & Jin, CVPR 2022): local texture estimator for implicit image functions.

Two 3x3 convolutions on the encoder features estimate, per latent code, Fourier
amplitudes (coefficients) and frequencies; a bias-free linear map of the cell gives
a phase. For each of the 4 nearest codes the query becomes
``coef * [cos(pi (F·delta + phase)), sin(pi (F·delta + phase))]`` (``delta`` the
relative coordinate, ``F`` the code's hidden/2 2-D frequencies), decoded by a ReLU
MLP; the predictions are area-weighted (local ensemble) and the bilinear up-sampling
of the input is added (LTE's long skip).

Follows their code where the paper is loose: hidden width 256; the decoder is the
paper's "4-layer MLP", i.e. hidden widths ``[256, 256, 256]`` then the RGB layer
(their config); no feature unfolding; frequency channels paired as
``(2k, 2k+1) = (y, x)``; the cell is LIIF's (``2 r`` in the paper's ``r``), as their
``rel_cell``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import register_model
from ..errors import ModelError
from .core import Encoded, ImplicitSR, Neighbour, Queries, bilinear_at, rows_of
from .encoders import encoder_presets, encoder_tiers, make_encoder
from .mlp import MLP


@dataclass
class CellQueries(Queries):
    phase: Tensor | None = None  # (B,Q,hidden_dim/2) the phase of the cell, same for all 4 codes


@register_model(presets=encoder_presets("lte", "LTE"),
                tiers=encoder_tiers(cpu={"hidden_dim": 64, "hidden": [64, 64]},
                                    smoke={"hidden_dim": 16, "hidden": [16]}))
class LTE(ImplicitSR):
    arch = "lte"
    feat_unfold = False  # LTE gathers its coefficient/frequency maps as they are

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: Mapping[str, Any] = MappingProxyType({}),
                 hidden_dim: int = 256, hidden: Sequence[int] = (256, 256, 256)) -> None:
        if hidden_dim % 2:
            raise ModelError(f"LTE hidden_dim must be even (cos and sin halves), got {hidden_dim}")
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        self.hidden_dim = hidden_dim
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, 3, hidden)

    def encode(self, lr: Tensor) -> Encoded:
        feat = self.encoder(lr)
        freq = self.freq(feat)  # channels (2k, 2k+1) are the pair (f_y, f_x)
        # One map so the core gathers everything in one lookup; all f_y then all f_x, so
        # that the texture reads contiguous runs.
        return Encoded(torch.cat([self.coef(feat), freq[:, 0::2], freq[:, 1::2]], dim=1), inp=lr)

    def query_context(self, state: Encoded, coord: Tensor, ratio: Tensor) -> CellQueries:
        return CellQueries(coord, ratio, phase=self.phase(2 * ratio))  # the cell, in LR pixels

    def texture(self, code: Tensor, rel_coord: Tensor, phase: Tensor) -> Tensor:
        """The MLP's input ``coef * [cos, sin](pi (F·delta + phase))`` from gathered codes
        ``[coef, f_y, f_x]`` (..., 2 hidden_dim); ``phase`` may lack the neighbour axis."""
        half = self.hidden_dim // 2
        coef, f_y, f_x = code.split([self.hidden_dim, half, half], dim=-1)
        x = torch.addcmul(phase, f_y, rel_coord[..., :1]).addcmul_(f_x, rel_coord[..., 1:]).mul_(math.pi)
        return coef * torch.cat([x.cos(), x.sin()], dim=-1)

    def decode(self, state: Encoded, nb: Neighbour, ctx: CellQueries) -> Tensor:
        return self.imnet(self.texture(nb.feat, nb.rel_coord, ctx.phase))

    # Fast path: the coefficient and frequency maps are per LR position already, so they
    # are what the fast path gathers; the 4 neighbours then go through cos/sin and the
    # MLP as one batch. The maps stay fp32 whatever the precision: they feed cos/sin.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def project(self, state: Encoded, dtype: torch.dtype = torch.float32) -> None:
        state.proj = rows_of(state.feat)

    def neighbour_hidden(self, state: Encoded, rows: Tensor, nb: Neighbour, ctx: CellQueries,
                         dtype: torch.dtype) -> Tensor:
        x = self.texture(rows.view(*nb.rel_coord.shape[:-1], -1), nb.rel_coord, ctx.phase)
        layer = self.first_layer()
        x = F.linear(x.to(dtype), layer.weight.to(dtype), layer.bias.to(dtype))
        return x.view(rows.shape[0], -1)

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: CellQueries) -> Tensor:
        return self.imnet.forward_hidden(hidden)

    def query_state(self) -> tuple[str, ...]:
        return ("feat", "inp")

    def skip(self, state: Encoded, coord: Tensor) -> Tensor | None:
        return bilinear_at(state.inp, coord)
