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

import torch
from torch import Tensor, nn

from ..errors import ModelError
from .core import ImplicitSR, Neighbour, bilinear_at
from .encoders import make_encoder
from .mlp import MLP


class LTE(ImplicitSR):
    arch = "lte"
    feat_unfold = False  # LTE gathers its coefficient/frequency maps as they are

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 hidden_dim: int = 256, hidden: list[int] | None = None) -> None:
        if hidden_dim % 2:
            raise ModelError(f"LTE hidden_dim must be even (cos and sin halves), got {hidden_dim}")
        hidden = list(hidden or [256, 256, 256])
        super().__init__(encoder=encoder, encoder_args=dict(encoder_args or {}),
                         hidden_dim=hidden_dim, hidden=hidden)
        self.encoder = make_encoder(encoder, **(encoder_args or {}))
        self.hidden_dim = hidden_dim
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, 3, hidden)

    def encode(self, lr: Tensor) -> dict[str, Tensor]:
        feat = self.encoder(lr)
        # One map so the core gathers coefficients and frequencies in one lookup.
        return {"inp": lr, "feat": torch.cat([self.coef(feat), self.freq(feat)], dim=1)}

    def query_context(self, state: dict[str, Tensor], coord: Tensor, ratio: Tensor) -> dict[str, Tensor]:
        ctx = super().query_context(state, coord, ratio)
        ctx["phase"] = self.phase(2 * ratio)  # the cell, in LR pixels: same for all 4 codes
        return ctx

    def decode(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        coef, freq = nb.feat.split(self.hidden_dim, dim=-1)
        freq = freq.unflatten(-1, (self.hidden_dim // 2, 2))  # (B, Q, K, 2): (f_y, f_x) pairs
        x = (freq * nb.rel_coord.unsqueeze(-2)).sum(-1) + ctx["phase"]
        x = math.pi * x
        return self.imnet(coef * torch.cat([x.cos(), x.sin()], dim=-1))

    def skip(self, state: dict[str, Tensor], coord: Tensor) -> Tensor | None:
        return bilinear_at(state["inp"], coord)
