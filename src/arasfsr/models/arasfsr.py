"""ARASFSR (Tsai et al., WACV 2024): the paper's model, with its ablation switches.

encoder features (+ frequency tokens, Sec. 3.3) -> 3x3 unfolding -> for each of the
4 nearest codes: MLP([code, relative coordinate, r]) modulated by the positional
encoding of the global query coordinate (Sec. 3.4) -> area-weighted ensemble ->
+ bilinear up-sampling of the input (skip connection, Sec. 3.5).

Switches: ``frequency=False`` is the paper's -L, ``modulation=False`` its -G (a plain
ReLU MLP of the same widths), ``skip=False`` its -S. Where the paper is silent we use
the authors' choices: 8 frequency tokens, MLP hidden widths 256 x 4. See
``frequency.py`` and ``modulation.py`` for the module-level choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures import preset, register_model
from .core import Encoded, ImplicitSR, Neighbour, Queries, bilinear_at
from .encoders import encoder_presets, encoder_tiers, make_encoder
from .frequency import FrequencyEstimator
from .mlp import MLP
from .modulation import ModulatedMLP, PositionalEncoding


@dataclass
class ModulatedQueries(Queries):
    g: Tensor | None = None            # positional encoding of the query (Eq. 6); None for -G
    mods: list[Tensor] | None = None   # fast path: every layer's sine modulation of g


@register_model(
    presets={**encoder_presets("arasfsr", "ARASFSR", " (paper)"),
             "e-arasfsr-L": preset("ARASFSR(-L) ablation: without local frequency estimation",
                                   encoder="edsr-baseline", frequency=False),
             "e-arasfsr-G": preset("ARASFSR(-G) ablation: without global coordinate modulation",
                                   encoder="edsr-baseline", modulation=False),
             "e-arasfsr-S": preset("ARASFSR(-S) ablation: without skip connection",
                                   encoder="edsr-baseline", skip=False)},
    tiers=encoder_tiers(cpu={"hidden": [64, 64, 64], "frequency_width": 16, "frequency_blocks": 1},
                        smoke={"hidden": [16, 16], "tokens": 2, "frequency_width": 8, "frequency_blocks": 1,
                               "pe_freqs": 2}),
)
class ARASFSR(ImplicitSR):
    arch = "arasfsr"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: Mapping[str, Any] = MappingProxyType({}),
                 hidden: Sequence[int] = (256, 256, 256, 256), frequency: bool = True, tokens: int = 8,
                 frequency_width: int = 64, frequency_blocks: int = 4, modulation: bool = True,
                 pe_freqs: int = 10, skip: bool = True, sample: bool = False) -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        feat_dim = self.encoder.out_dim
        self.frequency = FrequencyEstimator(tokens, frequency_width, frequency_blocks) if frequency else None
        if frequency:
            feat_dim += tokens
        in_dim = feat_dim * 9 + 2 + 2  # unfolded code, relative coordinate, scale ratio
        if modulation:
            self.pe = PositionalEncoding(2, pe_freqs)
            self.imnet = ModulatedMLP(in_dim, self.pe.out_dim, 3, hidden)
        else:
            self.pe = None
            self.imnet = MLP(in_dim, 3, hidden)
        self.use_skip = skip
        # Draw the frequency latent instead of using its mean (set at inference on request).
        self.sample = sample

    def encode(self, lr: Tensor) -> Encoded:
        feat = self.encoder(lr)
        if self.frequency is None:
            return Encoded(feat, inp=lr)
        tokens, mu, logvar = self.frequency(lr, sample=self.training or self.sample)
        return Encoded(torch.cat([feat, tokens], dim=1), inp=lr, mu=mu, logvar=logvar)

    def query_context(self, state: Encoded, coord: Tensor, ratio: Tensor) -> ModulatedQueries:
        # g depends on the query only: once for all 4 neighbours
        return ModulatedQueries(coord, ratio, g=None if self.pe is None else self.pe(coord))

    def neighbour_inputs(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        return torch.cat([nb.rel_coord, ctx.ratio.expand_as(nb.rel_coord)], dim=-1)

    def decode(self, state: Encoded, nb: Neighbour, ctx: ModulatedQueries) -> Tensor:
        x = torch.cat([nb.feat, self.neighbour_inputs(state, nb, ctx)], dim=-1)
        return self.imnet(x) if self.pe is None else self.imnet(x, ctx.g)

    # Fast path: the first layer's code part becomes a conv; the sine layers run once per query.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def fast_context(self, state: Encoded, ctx: ModulatedQueries, dtype: torch.dtype) -> ModulatedQueries:
        return ctx if self.pe is None else replace(ctx, mods=self.imnet.modulations(ctx.g, dtype))

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: ModulatedQueries) -> Tensor:
        if self.pe is None:
            return self.imnet.forward_hidden(hidden)
        return self.imnet.forward_hidden(hidden, ctx.mods)

    def query_state(self) -> tuple[str, ...]:
        return ("feat", "inp") if self.use_skip else ("feat",)

    def skip(self, state: Encoded, coord: Tensor) -> Tensor | None:
        return bilinear_at(state.inp, coord) if self.use_skip else None
