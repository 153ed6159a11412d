"""Feature encoders: EDSR-baseline ("E-") and RDN ("R-"), without their up-samplers.

Both map a normalised LR image (B,3,h,w) to a feature map (B, out_dim, h, w) of the
same size, as in LIIF and the ARASFSR paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR (Lim et al. 2017); the defaults are the "baseline": 16 blocks, 64 channels."""

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.head = conv3x3(in_channels, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  conv3x3(n_feats, n_feats))
        self.out_dim = n_feats

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return x + self.body(x)


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv3x3(cin, growth), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


class RDB(nn.Module):
    """Residual dense block: C densely connected convs, 1x1 fusion, local residual."""

    def __init__(self, channels: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[DenseLayer(channels + i * growth, growth) for i in range(n_layers)])
        self.fuse = nn.Conv2d(channels + n_layers * growth, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fuse(self.layers(x))


class RDN(nn.Module):
    """RDN (Zhang et al. 2018); defaults are configuration B: D=16 blocks, C=8 layers, G=64."""

    def __init__(self, n_blocks: int = 16, n_layers: int = 8, growth: int = 64,
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
        return self.gff(torch.cat(outs, dim=1)) + f1


ENCODERS = {"edsr-baseline": EDSR, "rdn": RDN}


def make_encoder(name: str, **kwargs) -> nn.Module:
    """An encoder by name (``edsr-baseline`` or ``rdn``) with optional size overrides."""
    try:
        return ENCODERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}") from None
