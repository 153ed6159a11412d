"""ARASFSR (Tsai et al., WACV 2024): the paper's model, with its ablation switches.

encoder features (+ frequency tokens, Sec. 3.3) -> 3x3 unfolding -> for each of the
4 nearest codes: MLP([code, relative coordinate, r]) modulated by the positional
encoding of the global query coordinate (Sec. 3.4) -> area-weighted ensemble ->
+ bilinear up-sampling of the input (skip connection, Sec. 3.5).

Switches: ``frequency=False`` is the paper's -L, ``modulation=False`` its -G (a plain
ReLU MLP of the same widths), ``skip=False`` its -S. Where the paper is silent we take
the authors' code's choices (8 frequency tokens, N = 10, the frequency module's sizes);
their repository ships no config, so the MLP hidden widths 256 x 4 are LIIF's (its
CelebA-HQ and DIV2K configs), not a documented choice of theirs.

``variant="authors"`` is the authors' released code (nycu-acm/ARASFSR, ``asfsr``) where
it differs from the paper's equations: the MLP also reads the global coordinate of the
neighbour's code centre (``q_coord``, after the relative coordinate), the cell input is
2r (LIIF's ``rel_cell``) instead of r, the positional encoding has no pi, and the sine
layers are chained. Their -G (``asfsr_wo_glo``) has no ``q_coord``: with
``modulation=False`` the variant only doubles the cell. Every difference, and what it
changes, is in docs/fidelity.md. Their code also draws z at inference; here that is
``sample`` (and ``sample_seed``), off by default, or per call ``frequency.latent_draw``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..architectures import preset, register_model
from .core import Encoded, ImplicitSR, Neighbour, Queries, bilinear_at
from .encoders import encoder_presets, encoder_tiers, make_encoder
from .frequency import FrequencyEstimator, requested_draw
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
                                   encoder="edsr-baseline", skip=False),
             "e-arasfsr-authors": preset("ARASFSR as the authors' released code computes it "
                                         "(q_coord input, 2r cell, PE without pi, chained sine layers)",
                                         encoder="edsr-baseline", variant="authors")},
    tiers=encoder_tiers(cpu={"hidden": [64, 64, 64], "frequency_width": 16, "frequency_blocks": 1},
                        smoke={"hidden": [16, 16], "tokens": 2, "frequency_width": 8, "frequency_blocks": 1,
                               "pe_freqs": 2}),
)
class ARASFSR(ImplicitSR):
    arch = "arasfsr"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: Mapping[str, Any] = MappingProxyType({}),
                 hidden: Sequence[int] = (256, 256, 256, 256), frequency: bool = True, tokens: int = 8,
                 frequency_width: int = 64, frequency_blocks: int = 4, modulation: bool = True,
                 pe_freqs: int = 10, skip: bool = True, sample: bool = False,
                 variant: Literal["paper", "authors"] = "paper") -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        feat_dim = self.encoder.out_dim
        self.frequency = FrequencyEstimator(tokens, frequency_width, frequency_blocks) if frequency else None
        if frequency:
            feat_dim += tokens
        authors = variant == "authors"
        self.code_centre_input = authors and modulation  # their q_coord; their -G drops it
        self.cell_factor = 2.0 if authors else 1.0  # their rel_cell = 2 h/H; the paper's r = h/H
        # unfolded code, relative coordinate, [code centre,] scale ratio
        in_dim = feat_dim * 9 + 2 + (2 if self.code_centre_input else 0) + 2
        if modulation:
            self.pe = PositionalEncoding(2, pe_freqs, with_pi=not authors)
            self.imnet = ModulatedMLP(in_dim, self.pe.out_dim, 3, hidden, chained=authors)
        else:
            self.pe = None
            self.imnet = MLP(in_dim, 3, hidden)
        self.use_skip = skip
        # Draw the frequency latent instead of using its mean (set at inference on request),
        # from this seed if not None (then the same input gives the same output).
        self.sample = sample
        self.sample_seed: int | None = None

    def encode(self, lr: Tensor) -> Encoded:
        feat = self.encoder(lr)
        if self.frequency is None:
            return Encoded(feat, inp=lr)
        if self.training:
            tokens, mu, logvar = self.frequency(lr, sample=True)
        else:
            sample, seed = requested_draw() or (self.sample, self.sample_seed)
            tokens, mu, logvar = self.frequency(lr, sample=sample, seed=seed)
        return Encoded(torch.cat([feat, tokens], dim=1), inp=lr, mu=mu, logvar=logvar)

    def query_context(self, state: Encoded, coord: Tensor, ratio: Tensor) -> ModulatedQueries:
        # g depends on the query only: once for all 4 neighbours, and once for a whole batch
        # when the batch renders one grid (render expands it: stride 0); the sine layers
        # then run once per pixel, not once per pixel and image.
        if self.pe is None:
            return ModulatedQueries(coord, ratio, g=None)
        shared = coord.shape[0] > 1 and coord.stride(0) == 0 and not torch.jit.is_tracing() \
            and not torch.onnx.is_in_onnx_export()
        return ModulatedQueries(coord, ratio, g=self.pe(coord[:1] if shared else coord))

    def neighbour_inputs(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        cell = ctx.ratio.expand_as(nb.rel_coord)
        if self.cell_factor != 1.0:
            cell = cell * self.cell_factor
        if self.code_centre_input:
            return torch.cat([nb.rel_coord, nb.code_coord, cell], dim=-1)
        return torch.cat([nb.rel_coord, cell], dim=-1)

    def decode(self, state: Encoded, nb: Neighbour, ctx: ModulatedQueries) -> Tensor:
        x = torch.cat([nb.feat, self.neighbour_inputs(state, nb, ctx)], dim=-1)
        return self.imnet(x) if self.pe is None else self.imnet(x, ctx.g)

    # Fast path: the first layer's code part becomes a conv; the sine layers run once per query.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def fast_context(self, state: Encoded, ctx: ModulatedQueries, dtype: torch.dtype) -> ModulatedQueries:
        if self.pe is None:
            return ctx
        if ctx.grid is not None and not self.imnet.chained and not self.imnet.in_graph():
            # The encoding separates: g(y, x) = g(y, 0) + (g(0, x) - g(0, 0)), each entry a
            # function of y alone or of x alone. The sine layers' products then run per row
            # and per column (the columns once per image: chunks are bands of whole rows),
            # and each query adds its row's product to its column's.
            ys, xs = ctx.grid
            key = ("sine products of columns", xs.shape[0], float(xs[0]), float(xs[-1]))
            by_col = state.memo.get(key)
            if by_col is None:
                g_cols = self.pe(torch.stack([torch.zeros_like(xs), xs], dim=-1)) - self.pe(xs.new_zeros(1, 2))
                by_col = self.imnet.sine_products(g_cols, bias=False)
                if len(state.memo) < 4:  # wider than a chunk: a few column blocks recur
                    state.memo[key] = by_col
            by_row = self.imnet.sine_products(self.pe(torch.stack([ys, torch.zeros_like(ys)], dim=-1)))
            return replace(ctx, mods=self.imnet.grid_modulations(by_row, by_col, dtype))
        return replace(ctx, mods=self.imnet.modulations(ctx.g, dtype))

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: ModulatedQueries) -> Tensor:
        if self.pe is None:
            return self.imnet.forward_hidden(hidden)
        return self.imnet.forward_hidden(hidden, ctx.mods)

    def query_state(self) -> tuple[str, ...]:
        return ("feat", "inp") if self.use_skip else ("feat",)

    def skip(self, state: Encoded, coord: Tensor) -> Tensor | None:
        return bilinear_at(state.inp, coord) if self.use_skip else None
