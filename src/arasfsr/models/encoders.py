"""Feature encoders: EDSR-baseline ("E-") and RDN ("R-"), without their up-samplers.

Both map a normalised LR image (B,3,h,w) to a feature map (B, out_dim, h, w) of the
same size, as in LIIF and the ARASFSR paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from ..architectures import AtLeast, Preset, bind_config, preset
from ..errors import ModelError
from . import fused


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity shortcut (no batch norm, as in EDSR)."""

    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True),
                                  conv3x3(channels, channels))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        conv1, _, conv2 = self.body
        if self.res_scale == 1:  # the convolutions do the ReLU and the add (CPU inference)
            return fused.conv2d_add(fused.conv2d(x, conv1, "relu"), conv2, x)
        return torch.add(x, self.body(x), alpha=self.res_scale)


class EDSR(nn.Module):
    """EDSR (Lim et al. 2017); the defaults are the "baseline": 16 blocks, 64 channels."""

    def __init__(self, n_resblocks: Annotated[int, AtLeast(0)] = 16, n_feats: int = 64,
                 res_scale: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.head = conv3x3(in_channels, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  conv3x3(n_feats, n_feats))
        self.out_dim = n_feats

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return fused.conv2d_add(self.body[:-1](x), self.body[-1], x)


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv3x3(cin, growth), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, fused.conv2d(x, self.conv[0], "relu")], dim=1)


class RDB(nn.Module):
    """Residual dense block: C densely connected convs, 1x1 fusion, local residual."""

    def __init__(self, channels: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[DenseLayer(channels + i * growth, growth) for i in range(n_layers)])
        self.fuse = nn.Conv2d(channels + n_layers * growth, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return fused.conv2d_add(self.layers(x), self.fuse, x)


class RDN(nn.Module):
    """RDN (Zhang et al. 2018); defaults are configuration B: D=16 blocks, C=8 layers, G=64."""

    def __init__(self, n_blocks: int = 16, n_layers: Annotated[int, AtLeast(0)] = 8, growth: int = 64,
                 n_feats: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.sfe1 = conv3x3(in_channels, n_feats)
        self.sfe2 = conv3x3(n_feats, n_feats)
        self.blocks = nn.ModuleList([RDB(n_feats, growth, n_layers) for _ in range(n_blocks)])
        self.gff = nn.Sequential(nn.Conv2d(n_blocks * n_feats, n_feats, 1), conv3x3(n_feats, n_feats))
        self.out_dim = n_feats

    def forward(self, x: Tensor) -> Tensor:
        f1 = self.sfe1(x)
        x = self.sfe2(f1)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return fused.conv2d_add(self.gff[0](torch.cat(outs, dim=1)), self.gff[1], f1)


ENCODERS = {"edsr-baseline": EDSR, "rdn": RDN}
ENCODER_TITLES = {"e": ("edsr-baseline", "EDSR-baseline"), "r": ("rdn", "RDN")}

# Encoder sizes of the budget tiers, shared by the implicit models (their tier sizes).
TIER_ENCODERS = {"cpu": {"n_resblocks": 4, "n_feats": 32}, "smoke": {"n_resblocks": 1, "n_feats": 8}}


def make_encoder(name: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """An encoder by name (a key of :data:`ENCODERS`) with size overrides ``args``,
    checked against its constructor like a model's config."""
    if name not in ENCODERS:
        raise ModelError(f"unknown encoder {name!r}; choose from {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](**bind_config(ENCODERS[name].__init__, args or {}, f"encoder_args of {name!r}"))


def encoder_tiers(**decoder_sizes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``tiers=`` of ``@register_model`` for a model on these encoders: each tier's encoder
    sizes (:data:`TIER_ENCODERS`) and the decoder sizes given for it, e.g.
    ``encoder_tiers(cpu={"hidden": [64, 64]}, smoke={"hidden": [16]})``."""
    return {tier: {"encoder_args": TIER_ENCODERS[tier], **sizes} for tier, sizes in decoder_sizes.items()}


def encoder_presets(arch: str, title: str, note: str = "") -> dict[str, Preset]:
    """The ``e-ARCH`` and ``r-ARCH`` presets: the model with each encoder."""
    return {f"{key}-{arch}": preset(f"{title}, {label} encoder{note}", encoder=name)
            for key, (name, label) in ENCODER_TITLES.items()}
