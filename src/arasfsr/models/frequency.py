"""Local frequency estimation module (paper Sec. 3.3).

A VAE-style encoder predicts, for every LR position, the mean and log-variance of a
Gaussian latent ``z``; a decoder turns ``z`` into image-specific high-frequency tokens
(8 channels) that are concatenated to the encoder features before unfolding.

Where the paper is silent we follow the authors' code (nycu-acm/ARASFSR, ``HFVAE``):
64 channels, 4 residual blocks in each half, LeakyReLU(0.2) after the first conv, a
long residual around the blocks, and no KL term in their loss (``kl_weight`` in the
training config adds one). Unlike their code, inference uses the mean of ``z`` by
default, so the same input always gives the same output; ``sample=True`` draws ``z``
(from a seed, if given: then each image's draw depends on the seed only, not on the
other images of its batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from . import fused
from .encoders import ResBlock, conv3x3


class _Trunk(nn.Module):
    """conv-LeakyReLU, residual blocks, conv, long residual, output conv."""

    def __init__(self, cin: int, width: int, cout: int, n_resblocks: int) -> None:
        super().__init__()
        self.head = nn.Sequential(conv3x3(cin, width), nn.LeakyReLU(0.2, inplace=True))
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(n_resblocks)], conv3x3(width, width))
        self.tail = conv3x3(width, cout)

    def forward(self, x: Tensor) -> Tensor:
        x = fused.conv2d(x, self.head[0], "leaky_relu", self.head[1].negative_slope)
        return self.tail(fused.conv2d_add(self.body[:-1](x), self.body[-1], x))


class FrequencyEstimator(nn.Module):
    def __init__(self, tokens: int = 8, width: int = 64, n_resblocks: int = 4) -> None:
        super().__init__()
        self.encoder = _Trunk(3, width, 2 * width, n_resblocks)
        self.decoder = _Trunk(width, width, tokens, n_resblocks)
        self.out_dim = tokens

    def forward(self, lr: Tensor, sample: bool = False, seed: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens (B,tokens,h,w), and the latent's mean and log-variance."""
        mu, logvar = self.encoder(lr).chunk(2, dim=1)
        z = mu + draw_normal(mu, seed) * torch.exp(0.5 * logvar) if sample else mu
        return self.decoder(z), mu, logvar


_DRAW: ContextVar[tuple[bool, int | None] | None] = ContextVar("arasfsr_latent_draw", default=None)


@contextmanager
def latent_draw(sample: bool, seed: int | None = None) -> Iterator[None]:
    """Within the block, inference in this thread draws z (from ``seed``) or takes its mean,
    whatever the model's own ``sample`` says: a per-call choice that changes no model, so
    one model can serve callers who ask differently at the same time."""
    token = _DRAW.set((sample, seed))
    try:
        yield
    finally:
        _DRAW.reset(token)


def requested_draw() -> tuple[bool, int | None] | None:
    """(sample, seed) asked for by :func:`latent_draw`, or None outside it."""
    return _DRAW.get()


def draw_normal(like: Tensor, seed: int | None = None) -> Tensor:
    """N(0, 1) noise shaped like ``like`` (B, ...): from the global generator, or, with a
    seed, each image's from its own generator seeded with it (batch-independent)."""
    if seed is None:
        return torch.randn_like(like)
    draws = []
    for _ in range(like.shape[0]):
        gen = torch.Generator(like.device).manual_seed(seed)
        draws.append(torch.randn(like.shape[1:], generator=gen, device=like.device, dtype=like.dtype))
    return torch.stack(draws)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma) || N(0, 1)), summed over the latent, averaged over the batch."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]
