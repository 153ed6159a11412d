"""SPARNet (Chen et al., arXiv 2020 / IEEE TIP 2021): face SR with spatial attention, fixed x8.

NOT an implicit model. The LR image is bicubic up-sampled to 8x its size (their data
pipeline feeds the network the up-sampled 128x128 image of a 16x16 face), then an
encoder of strided face-attention units (FAUs), a body of FAUs at 1/8 of that size and
a decoder of up-sampling FAUs restore it. Each FAU is a pre-activation residual block
whose residual is multiplied by a spatial attention map predicted by an hourglass
(``depth`` levels of stride-2 convolutions, 1 channel out for "spar", one per
feature channel for "spar3d").

``render(lr, size)`` runs the network at its native 8x. When ``size`` is not 8x the
input, the 8x output is resized to ``size`` with anti-aliased bicubic: that is how a
fixed-scale network answers the arbitrary-scale protocol (ARASFSR's "mismatch" cases).
``chunk_size``, ``precision`` and ``fast`` are ignored (the network is convolutional, fp32).

Defaults are their public code's for 16->128 (``res_depth=10``, channels clipped to
[32, 128], hourglass width 64 and 4x4 bottleneck, batch norm, LeakyReLU 0.2,
N(0, 0.02) initialisation). ``min_ch``/``max_ch``/``attention_ch``/``res_depth`` give a
lighter network for the CPU. Deviations: PyTorch's bicubic (a = -0.75) instead of
PIL's for the input up-sampling; LR images smaller than the hourglasses can take
(8 px per side with the defaults) are edge-padded, and the padding cropped away.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import AtLeast, preset, register_model
from ..errors import ModelError
from .core import SuperResolver, denormalise, normalise


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ModelError(f"SPARNet norm must be bn, in or none, got {kind!r}")


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "leakyrelu":
        return nn.LeakyReLU(0.2)
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "none":
        return nn.Identity()
    raise ModelError(f"SPARNet act must be leakyrelu, relu, prelu or none, got {kind!r}")


def conv(cin: int, cout: int, scale: str = "none", norm: str = "none", act: str = "none") -> nn.Sequential:
    """[nearest x2 |] reflection-padded 3x3 conv [stride 2] -> norm -> activation."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if scale == "up" else []
    layers += [nn.ReflectionPad2d(1),
               nn.Conv2d(cin, cout, 3, stride=2 if scale == "down" else 1, bias=norm == "none"),
               _norm(norm, cout), _act(act, cout)]
    return nn.Sequential(*layers)


class Hourglass(nn.Module):
    """One level: a same-size branch plus down -> (inner level) -> up, summed."""

    def __init__(self, depth: int, cin: int, cmid: int, norm: str, act: str) -> None:
        super().__init__()
        self.same = conv(cin, cmid, norm=norm, act=act)
        self.down = conv(cin, cmid, "down", norm, act)
        self.inner = (Hourglass(depth - 1, cmid, cmid, norm, act) if depth > 1
                      else conv(cmid, cmid, norm=norm, act=act))
        self.up = conv(cmid, cmid, "up", norm, act)

    def forward(self, x: Tensor) -> Tensor:
        same = self.same(x)
        low = self.up(self.inner(self.down(x)))
        if low.shape[-2:] != same.shape[-2:]:  # odd sizes: ceil on the way down
            low = F.interpolate(low, size=same.shape[-2:], mode="nearest")
        return same + low


class FAU(nn.Module):
    """Face attention unit: x' = shortcut(x) + body(x) * sigmoid(hourglass(body(x)))."""

    def __init__(self, cin: int, cout: int, scale: str, depth: int, attention: str, attention_ch: int,
                 norm: str, act: str) -> None:
        super().__init__()
        self.shortcut = nn.Identity() if scale == "none" and cin == cout else conv(cin, cout, scale)
        first, second = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.body = nn.Sequential(_norm(norm, cin), _act(act, cin),
                                  conv(cin, cout, first, norm, act), conv(cout, cout, second, norm))
        if depth > 0:
            mask_ch = {"spar": 1, "spar3d": cout}[attention]
            self.attention = nn.Sequential(Hourglass(depth, cout, attention_ch, norm, act),
                                           conv(attention_ch, mask_ch), nn.Sigmoid())
        else:
            self.attention = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        if self.attention is not None:
            out = out * self.attention(out)
        return self.shortcut(x) + out


@register_model(presets={"sparnet": preset("SPARNet, fixed x8 face SR (other sizes: resized output)")},
                tiers={"cpu": {"min_ch": 16, "max_ch": 64, "res_depth": 2, "attention_ch": 32},
                       "smoke": {"min_ch": 4, "max_ch": 8, "res_depth": 1, "attention_ch": 4}})
class SPARNet(SuperResolver):
    arch = "sparnet"

    def __init__(self, scale: int = 8, min_ch: int = 32, max_ch: int = 128,
                 res_depth: Annotated[int, AtLeast(0)] = 10, attention: str = "spar", attention_ch: int = 64,
                 bottleneck_size: int = 4, norm: str = "bn", act: str = "leakyrelu") -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ModelError(f"SPARNet scale must be a power of two >= 2, got {scale}")
        if attention not in ("spar", "spar3d"):
            raise ModelError(f"SPARNet attention must be spar or spar3d, got {attention!r}")
        if bottleneck_size < 1 or bottleneck_size > 64:
            raise ModelError(f"SPARNet bottleneck_size must be in [1, 64], got {bottleneck_size}")
        self.scale = scale
        steps = int(math.log2(scale))
        clip = lambda c: max(min_ch, min(c, max_ch))  # noqa: E731
        unit = dict(attention=attention, attention_ch=attention_ch, norm=norm, act=act)

        # Hourglass depth falls by one per halving, so every bottleneck is bottleneck_size
        # at the native 16x16 -> 128x128 (64 / bottleneck_size at the first FAU's 64x64).
        depth = int(math.log2(64 / bottleneck_size))
        ch = clip(max_ch // (steps + 1))
        encoder: list[nn.Module] = [conv(3, ch)]
        for _ in range(steps):
            encoder.append(FAU(clip(ch), clip(ch * 2), "down", max(depth, 0), **unit))
            ch, depth = ch * 2, depth - 1
        depth += 1
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*[FAU(clip(ch), clip(ch), "none", max(depth, 0), **unit)
                                    for _ in range(res_depth + 3 - steps)])
        decoder: list[nn.Module] = []
        for _ in range(steps):
            depth += 1
            decoder.append(FAU(clip(ch), clip(ch // 2), "up", max(depth, 0), **unit))
            ch //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_conv = conv(clip(ch), 3)
        # Smallest LR side whose deepest hourglass level (and 1/8-size body) still has
        # 2 pixels for the reflection padding.
        self.min_lr_side = max(2, math.ceil(2 ** (int(math.log2(64 / bottleneck_size)) + 2) / scale))
        self._init_weights()

    def _init_weights(self) -> None:
        # Their define_network: N(0, 0.02) conv weights, zero biases, BN scale N(1, 0.02).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def net(self, x: Tensor) -> Tensor:
        """The network on a normalised, already up-sampled image (their ``SPARNet.forward``)."""
        return self.out_conv(self.decoder(self.body(self.encoder(x))))

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None, *,
               precision: str | None = None, fast: bool = True) -> Tensor:
        h, w = lr.shape[-2:]
        pad_h, pad_w = max(0, self.min_lr_side - h), max(0, self.min_lr_side - w)
        if pad_h or pad_w:
            lr = F.pad(lr, (0, pad_w, 0, pad_h), mode="replicate")
        s = self.scale
        up = F.interpolate(lr, size=(s * lr.shape[-2], s * lr.shape[-1]), mode="bicubic",
                           align_corners=False).clamp(0, 1)  # their LR is an 8-bit image
        out = denormalise(self.net(normalise(up)))[..., :s * h, :s * w]
        if tuple(size) != (s * h, s * w):
            out = F.interpolate(out, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
        return out.clamp(0, 1)
