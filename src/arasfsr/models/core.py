"""The implicit-query core shared by every implicit model (LIIF, LTE, DIINN, ARASFSR).

Written once: pixel-centre coordinates, 3x3 feature unfolding, the 4-neighbour local
ensemble with area weights, relative coordinates, the scale-ratio input and chunked
rendering. A model only says how it encodes the low-resolution image
(:meth:`ImplicitSR.encode`) and how it decodes one gathered neighbour
(:meth:`ImplicitSR.decode`).

Conventions (as in LIIF): coordinates are ``(y, x)`` pairs of pixel centres in
``[-1, 1]``; images are in ``[0, 1]`` outside the model and ``[-1, 1]`` inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Keeps memory bounded whatever the output size (queries per forward pass).
DEFAULT_CHUNK = 65536


def make_coord(shape: tuple[int, int], device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Pixel-centre coordinates of an ``H x W`` grid, shape ``(H*W, 2)``, ``(y, x)``."""
    axes = []
    for n in shape:
        r = 1.0 / n
        axes.append(-1 + r + 2 * r * torch.arange(n, device=device, dtype=dtype))
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


def unfold3x3(feat: Tensor) -> Tensor:
    """Concatenate each position's 3x3 neighbourhood (zero padded): C -> 9C channels."""
    b, c, h, w = feat.shape
    return F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)


def scale_ratio(lr_hw: tuple[int, int], out_hw: tuple[int, int], batch: int,
                device: torch.device | str | None = None) -> Tensor:
    """The paper's ``r = [1/r_y, 1/r_x]`` for one output size, shape ``(batch, 2)``."""
    ratio = torch.tensor([lr_hw[0] / out_hw[0], lr_hw[1] / out_hw[1]], device=device)
    return ratio.expand(batch, 2)


def bilinear_at(img: Tensor, coord: Tensor) -> Tensor:
    """Bilinear sample of ``img`` (B,C,h,w) at ``coord`` (B,Q,2) -> (B,Q,C), border padded."""
    grid = coord.flip(-1).unsqueeze(1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[:, :, 0, :].permute(0, 2, 1)


@dataclass
class Neighbour:
    """What the ensemble gathers for one of the four nearest latent codes."""

    feat: Tensor       # (B, Q, C') the (unfolded) code at the neighbour
    rel_coord: Tensor  # (B, Q, 2) query minus code centre, in units of half an LR pixel
    code_coord: Tensor  # (B, Q, 2) global coordinate of the code centre
    index: Tensor      # (B, Q) flat index of the code in the h*w grid


def gather_neighbours(feat: Tensor, coord: Tensor, local_ensemble: bool = True) -> list[Neighbour]:
    """The four nearest codes of each query (one, the nearest, without local ensemble).

    Nearest-code lookup by integer arithmetic is exactly what LIIF does with
    ``grid_sample(mode='nearest')``, without its (B, C, Q) intermediate.
    """
    b, c, h, w = feat.shape
    flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
    batch_idx = torch.arange(b, device=feat.device).unsqueeze(1)
    ry, rx = 1.0 / h, 1.0 / w  # half a pixel, in [-1, 1] units
    shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)] if local_ensemble else [(0, 0)]
    eps = 1e-6 if local_ensemble else 0.0
    out = []
    for vy, vx in shifts:
        cy = (coord[..., 0] + vy * ry + eps).clamp(-1 + 1e-6, 1 - 1e-6)
        cx = (coord[..., 1] + vx * rx + eps).clamp(-1 + 1e-6, 1 - 1e-6)
        iy = ((cy + 1) * (h / 2)).floor().long().clamp_(0, h - 1)
        ix = ((cx + 1) * (w / 2)).floor().long().clamp_(0, w - 1)
        code_coord = torch.stack([-1 + (2 * iy + 1) / h, -1 + (2 * ix + 1) / w], dim=-1).to(coord.dtype)
        rel = coord - code_coord
        rel = torch.stack([rel[..., 0] * h, rel[..., 1] * w], dim=-1)
        index = iy * w + ix
        out.append(Neighbour(flat[batch_idx, index], rel, code_coord, index))
    return out


def ensemble_weights(neighbours: list[Neighbour]) -> list[Tensor]:
    """Bilinear (area) weights of the four codes; they sum to 1 for every query.

    The weight of a code is the area of the rectangle between the query and the
    diagonally opposite code, hence the swap.
    """
    if len(neighbours) == 1:
        return [torch.ones_like(neighbours[0].rel_coord[..., 0])]
    areas = [(n.rel_coord[..., 0] * n.rel_coord[..., 1]).abs() + 1e-9 for n in neighbours]
    total = torch.stack(areas).sum(dim=0)
    opposite = [areas[3], areas[2], areas[1], areas[0]]
    return [a / total for a in opposite]


class SuperResolver(nn.Module):
    """Anything that turns a batch of LR images into images of a requested size.

    ``config`` holds the keyword arguments that rebuild the model, so a checkpoint is
    its weights plus this dictionary.
    """

    arch: str = ""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None) -> Tensor:
        """Super-resolve ``lr`` (B,3,h,w in [0,1]) to ``size = (H, W)``; returns (B,3,H,W)."""
        raise NotImplementedError

    def forward(self, lr: Tensor, coord: Tensor, ratio: Tensor) -> Tensor:
        """RGB in [0,1] at ``coord`` (B,Q,2) for outputs whose size gives ``ratio`` (B,2).

        Models without an implicit decoder render the whole image and read it at the
        queried pixel centres; implicit models override this.
        """
        h, w = lr.shape[-2:]
        out_h = max(1, round(h / float(ratio[0, 0])))
        out_w = max(1, round(w / float(ratio[0, 1])))
        img = self.render(lr, (out_h, out_w))
        iy = ((coord[..., 0] + 1) * (out_h / 2)).floor().long().clamp(0, out_h - 1)
        ix = ((coord[..., 1] + 1) * (out_w / 2)).floor().long().clamp(0, out_w - 1)
        flat = img.flatten(2).transpose(1, 2)
        return flat[torch.arange(img.shape[0], device=img.device).unsqueeze(1), iy * out_w + ix]


class ImplicitSR(SuperResolver):
    """A local implicit image function: encode once, then query any coordinate.

    Subclasses set :attr:`feat_unfold` and :attr:`local_ensemble`, implement
    :meth:`encode` (returning at least ``feat``) and :meth:`decode`, and may add a
    per-query term in :meth:`skip` (the bilinear skip of ARASFSR and LTE).
    """

    feat_unfold: bool = True
    local_ensemble: bool = True

    def encode(self, lr: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def query_context(self, state: dict[str, Tensor], coord: Tensor, ratio: Tensor) -> dict[str, Tensor]:
        """Per-query inputs shared by the 4 neighbours (computed once per chunk).

        ``coord`` (B,Q,2) and ``ratio`` broadcast to (B,Q,2) are always there; models add
        what depends on the query only (ARASFSR's positional encoding).
        """
        return {"coord": coord, "ratio": ratio}

    def decode(self, state: dict[str, Tensor], nb: Neighbour, ctx: dict[str, Tensor]) -> Tensor:
        """Prediction (B,Q,3) from one neighbour."""
        raise NotImplementedError

    def skip(self, state: dict[str, Tensor], coord: Tensor) -> Tensor | None:
        return None

    def query_features(self, state: dict[str, Tensor]) -> Tensor:
        """The map the ensemble gathers from (unfolded once per image, cached)."""
        if "qfeat" not in state:
            state["qfeat"] = unfold3x3(state["feat"]) if self.feat_unfold else state["feat"]
        return state["qfeat"]

    def query(self, state: dict[str, Tensor], coord: Tensor, ratio: Tensor) -> Tensor:
        """Normalised RGB ([-1, 1] scale) at ``coord`` (B,Q,2)."""
        feat = self.query_features(state)
        ratio_q = ratio[:, None, :].expand(-1, coord.shape[1], -1).to(coord.dtype)
        ctx = self.query_context(state, coord, ratio_q)
        neighbours = gather_neighbours(feat, coord, self.local_ensemble)
        weights = ensemble_weights(neighbours)
        out = 0
        for nb, wgt in zip(neighbours, weights):
            out = out + self.decode(state, nb, ctx) * wgt.unsqueeze(-1)
        extra = self.skip(state, coord)
        return out if extra is None else out + extra

    def forward(self, lr: Tensor, coord: Tensor, ratio: Tensor) -> Tensor:
        state = self.encode(normalise(lr))
        return denormalise(self.query(state, coord, ratio))

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None) -> Tensor:
        chunk = chunk_size or DEFAULT_CHUNK
        b = lr.shape[0]
        out_h, out_w = size
        state = self.encode(normalise(lr))
        coord = make_coord((out_h, out_w), device=lr.device, dtype=lr.dtype)
        ratio = scale_ratio(lr.shape[-2:], (out_h, out_w), b, lr.device).to(lr.dtype)
        pieces = []
        for start in range(0, coord.shape[0], chunk):
            c = coord[start:start + chunk].unsqueeze(0).expand(b, -1, -1)
            pieces.append(self.query(state, c, ratio))
        pred = torch.cat(pieces, dim=1)
        return denormalise(pred).transpose(1, 2).reshape(b, 3, out_h, out_w)


def normalise(img: Tensor) -> Tensor:
    return (img - 0.5) / 0.5


def denormalise(img: Tensor) -> Tensor:
    return img * 0.5 + 0.5
