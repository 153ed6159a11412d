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

import torch
from torch import Tensor, nn

from .core import ImplicitSR, Neighbour, bilinear_at
from .encoders import make_encoder
from .frequency import FrequencyEstimator
from .mlp import MLP
from .modulation import ModulatedMLP, PositionalEncoding


class ARASFSR(ImplicitSR):
    arch = "arasfsr"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 hidden: list[int] | None = None, frequency: bool = True, tokens: int = 8,
                 frequency_width: int = 64, frequency_blocks: int = 4, modulation: bool = True,
                 pe_freqs: int = 10, skip: bool = True, sample: bool = False) -> None:
        hidden = list(hidden or [256, 256, 256, 256])
        super().__init__(encoder=encoder, encoder_args=dict(encoder_args or {}), hidden=hidden,
                         frequency=frequency, tokens=tokens, frequency_width=frequency_width,
                         frequency_blocks=frequency_blocks, modulation=modulation,
                         pe_freqs=pe_freqs, skip=skip)
        self.encoder = make_encoder(encoder, **(encoder_args or {}))
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

    def encode(self, lr: Tensor) -> dict[str, Tensor]:
        feat = self.encoder(lr)
        state = {"inp": lr}
        if self.frequency is not None:
            tokens, mu, logvar = self.frequency(lr, sample=self.training or self.sample)
            feat = torch.cat([feat, tokens], dim=1)
            state.update(mu=mu, logvar=logvar)
        state["feat"] = feat
        return state

    def query_context(self, state: dict[str, Tensor], coord: Tensor, ratio: Tensor) -> dict[str, Tensor]:
        ctx = super().query_context(state, coord, ratio)
        if self.pe is not None:
            ctx["g"] = self.pe(coord)  # depends on the query only: once for all 4 neighbours
        return ctx

    def neighbour_inputs(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        return torch.cat([nb.rel_coord, ctx["ratio"].expand_as(nb.rel_coord)], dim=-1)

    def decode(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        x = torch.cat([nb.feat, self.neighbour_inputs(state, nb, ctx)], dim=-1)
        return self.imnet(x) if self.pe is None else self.imnet(x, ctx["g"])

    # Fast path: the first layer's code part becomes a conv; the sine layers run once per query.
    def first_layer(self) -> nn.Linear:
        return self.imnet.layers[0]

    def fast_context(self, state: dict[str, Tensor], ctx: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
        if self.pe is not None:
            ctx["mods"] = self.imnet.modulations(ctx["g"], dtype)
        return ctx

    def decode_hidden(self, state: dict[str, Tensor], hidden: Tensor, ctx: dict[str, Tensor]) -> Tensor:
        if self.pe is None:
            return self.imnet.forward_hidden(hidden)
        return self.imnet.forward_hidden(hidden, ctx["mods"])

    def query_state(self) -> tuple[str, ...]:
        return ("feat", "inp") if self.use_skip else ("feat",)

    def skip(self, state: dict[str, Tensor], coord: Tensor) -> Tensor | None:
        return bilinear_at(state["inp"], coord) if self.use_skip else None
