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

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import record_config
from ..runtime import (TILE_MARGIN, auto_chunk_size, autocast, compute_dtype, release_freed_memory, report_progress,
                       tile_side)


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
    """What the ensemble gathers for one of the four nearest latent codes.

    The fast path stacks the four neighbours on a leading axis (K, B, Q, ...) and
    gathers no code (``feat`` is None): it reads the code's rows of ``proj`` (see ``project``).
    """

    feat: Tensor | None  # (B, Q, C') the (unfolded) code at the neighbour
    rel_coord: Tensor  # (B, Q, 2) query minus code centre, in units of half an LR pixel
    code_coord: Tensor  # (B, Q, 2) global coordinate of the code centre
    index: Tensor      # (B, Q) flat index of the code in the h*w grid


@dataclass(frozen=True)
class Window:
    """The part of a ``full_h x full_w`` LR grid that a tile's ``proj`` holds: rows
    ``y0:y0+h``, columns ``x0:x0+w``."""

    full_h: int
    full_w: int
    y0: int
    x0: int
    h: int
    w: int

    def local(self, index: Tensor) -> Tensor:
        """Flat indices into the full grid -> flat indices into the window."""
        iy = torch.div(index, self.full_w, rounding_mode="floor") - self.y0
        return iy * self.w + (index % self.full_w - self.x0)


@dataclass
class Encoded:
    """What :meth:`ImplicitSR.encode` computes once per image, read by every query."""

    feat: Tensor                      # (B,C,h,w) the map the queries gather codes from
    inp: Tensor | None = None         # (B,3,h,w) the normalised input (models with a bilinear skip)
    mu: Tensor | None = None          # ARASFSR: the frequency latent's mean and log-variance,
    logvar: Tensor | None = None      # for training's KL term
    qfeat: Tensor | None = None       # plain path: ``feat`` unfolded, once per image
    proj: Tensor | None = None        # fast path: what a neighbour gathers, (B*h*w, H)
    proj_extra: Tensor | None = None  # fast path: the first layer's weights for the extras
    window: Window | None = None      # fast path, tiled: where ``proj`` lies in the LR grid
    # fast path: what a model computes once for all chunks of the image, keyed by its inputs
    memo: dict[Any, Tensor] = field(default_factory=dict)


@dataclass
class Queries:
    """Per-query inputs shared by the 4 neighbours (computed once per chunk).

    Models that add per-query terms subclass it (ARASFSR's positional encoding).
    """

    coord: Tensor  # (B,Q,2)
    ratio: Tensor  # (B,Q,2) the paper's r, broadcast to every query
    # Fast path: when the queries are a grid (every row centre with every column centre,
    # row-major; the same grid for the whole batch), its (rows, columns) coordinates: a
    # model whose per-query terms separate in y and x can compute them per row and column.
    grid: tuple[Tensor, Tensor] | None = None


def locate_codes(coord: Tensor, h: int, w: int, local_ensemble: bool = True,
                 ties: str = "up") -> Neighbour:
    """The four nearest codes of each query (one without local ensemble), stacked: (K, B, Q, ...).

    Nearest-code lookup by the arithmetic of ``grid_sample(mode='nearest')`` after LIIF's
    shift of 1e-6, without its (B, C, Q) intermediate. Without the ensemble, a query
    centred exactly on an LR pixel boundary (24 of 96 rows at 64 -> 96) then reads the
    lower/right code, as ``F.interpolate(mode='nearest-exact')`` does in DIINN's code
    (``ties="up"``, verified against exact arithmetic on 28,128 grids); ``ties="even"``
    drops the shift: ``grid_sample``'s own rounding, half to even, fp32 noise deciding.
    """
    shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)] if local_ensemble else [(0, 0)]
    eps = 1e-6 if ties == "up" else 0.0
    # h and w stay symbolic (no Python lists of them) so that ONNX export keeps them dynamic.
    sy, sx = coord.new_tensor(shifts).view(-1, *([1] * (coord.dim() - 1)), 2).unbind(-1)
    cy = (coord[..., 0] + sy / h + eps).clamp(-1 + 1e-6, 1 - 1e-6)  # sy / h: half a pixel
    cx = (coord[..., 1] + sx / w + eps).clamp(-1 + 1e-6, 1 - 1e-6)
    iy = torch.round(((cy + 1) * h - 1) / 2).long().clamp(min=0).clamp(max=h - 1)
    ix = torch.round(((cx + 1) * w - 1) / 2).long().clamp(min=0).clamp(max=w - 1)
    code_coord = torch.stack([-1 + (2 * iy + 1) / h, -1 + (2 * ix + 1) / w], dim=-1).to(coord.dtype)
    rel = torch.stack([(coord[..., 0] - code_coord[..., 0]) * h, (coord[..., 1] - code_coord[..., 1]) * w], dim=-1)
    return Neighbour(None, rel, code_coord, iy * w + ix)


def rows_of(feat: Tensor) -> Tensor:
    """(B,C,h,w) -> (B*h*w, C), one contiguous row per LR position. For B = 1 the reshape
    alone is a view whose rows are strided by h*w, which made every gather cache-hostile."""
    return feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1]).contiguous()


def gather_stacked(feat: Tensor, coord: Tensor, local_ensemble: bool = True, ties: str = "up") -> Neighbour:
    """The four nearest codes of each query with their (unfolded) codes gathered, stacked
    (K, B, Q, ...): one gather, and a decoder that takes the stack runs once for all four."""
    b, c, h, w = feat.shape
    flat = rows_of(feat).view(b, h * w, c)
    nb = locate_codes(coord, h, w, local_ensemble, ties)
    nb.feat = flat[torch.arange(b, device=feat.device).view(1, b, 1), nb.index]
    return nb


def area_weights(rel_coord: Tensor) -> Tensor:
    """Bilinear (area) weights (K, B, Q) of stacked neighbours; they sum to 1 per query.

    The weight of a code is the area of the rectangle between the query and the
    diagonally opposite code, hence the flip.
    """
    if rel_coord.shape[0] == 1:
        return torch.ones_like(rel_coord[..., 0])
    areas = (rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9
    return areas.flip(0) / areas.sum(dim=0)


def ensemble_weights(neighbours: list[Neighbour]) -> list[Tensor]:
    """Area weights of a list of neighbours (see :func:`area_weights`)."""
    return list(area_weights(torch.stack([n.rel_coord for n in neighbours])).unbind(0))


class SuperResolver(nn.Module):
    """Anything that turns a batch of LR images into images of a requested size.

    ``config`` holds the constructor's arguments (defaults applied), recorded from its
    signature when the model is built (:func:`arasfsr.architectures.record_config`), so
    a checkpoint is its weights plus this dictionary. A model file registers its class
    with :func:`arasfsr.architectures.register_model`.
    """

    arch: str = ""
    needs_weights: bool = True  # False: usable without a checkpoint (bicubic)
    config: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.config = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls.__init__, "records_config", False):
            cls.__init__ = record_config(cls.__init__)

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None, *,
               precision: str | None = None, fast: bool = True) -> Tensor:
        """Super-resolve ``lr`` (B,3,h,w in [0,1]) to ``size = (H, W)``; returns (B,3,H,W).

        ``chunk_size``, ``precision`` and ``fast`` concern the implicit models' query
        rendering; other models may ignore them.
        """
        raise NotImplementedError

    def forward(self, lr: Tensor, coord: Tensor, ratio: Tensor) -> Tensor:
        """RGB in [0,1] at ``coord`` (B,Q,2) for outputs whose size gives ``ratio`` (B,2).

        Models without an implicit decoder render the whole image and read it at the
        queried pixel centres; implicit models override this. Samples of a batch may ask
        for different sizes: each group of equal ratios is rendered at its own size.
        """
        h, w = lr.shape[-2:]
        ratios, group = torch.unique(ratio, dim=0, return_inverse=True)
        out = coord.new_empty(*coord.shape[:-1], 3)
        for g, (ry, rx) in enumerate(ratios.tolist()):
            idx = (group == g).nonzero()[:, 0]
            out_h, out_w = max(1, round(h / ry)), max(1, round(w / rx))
            img = self.render(lr[idx], (out_h, out_w))
            c = coord[idx]
            iy = ((c[..., 0] + 1) * (out_h / 2)).floor().long().clamp(0, out_h - 1)
            ix = ((c[..., 1] + 1) * (out_w / 2)).floor().long().clamp(0, out_w - 1)
            flat = img.flatten(2).transpose(1, 2)
            out[idx] = flat[torch.arange(len(idx), device=img.device).unsqueeze(1), iy * out_w + ix].to(out.dtype)
        return out


class ImplicitSR(SuperResolver):
    """A local implicit image function: encode once, then query any coordinate.

    Subclasses set :attr:`feat_unfold` and :attr:`local_ensemble`, implement
    :meth:`encode` (an :class:`Encoded` with at least ``feat``) and :meth:`decode`, and
    may add a per-query term in :meth:`skip` (the bilinear skip of ARASFSR and LTE).

    Fast inference (:meth:`render`) is opt-in, through hooks: a model whose
    decoder starts with a linear layer over ``[unfolded code, per-neighbour extras]``
    returns that layer from :meth:`first_layer`, the extras from
    :meth:`neighbour_inputs` and the rest of the network from :meth:`decode_hidden`;
    :meth:`fast_context` adds per-query terms. The feature part of the first layer
    is then one 3x3 convolution per LR position instead of one product per query and
    neighbour. A decoder of another shape overrides :meth:`project` (what is computed
    once per LR position) and :meth:`neighbour_hidden` (what the gathered rows become
    for :meth:`decode_hidden`). Models without the hooks render through :meth:`query`.
    """

    feat_unfold: bool = True
    local_ensemble: bool = True
    ties: str = "up"  # nearest-code ties without the ensemble (see locate_codes)

    def encode(self, lr: Tensor) -> Encoded:
        raise NotImplementedError

    def query_context(self, state: Encoded, coord: Tensor, ratio: Tensor) -> Queries:
        """Per-query inputs shared by the 4 neighbours: ``coord`` (B,Q,2) and ``ratio``
        broadcast to (B,Q,2); models return a subclass with what depends on the query only."""
        return Queries(coord, ratio)

    def decode(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        """Prediction (..., B, Q, 3) from neighbours ``nb`` with any leading axes: the plain
        query passes all four stacked (K, B, Q, ...), the reference loop one (B, Q, ...);
        ``ctx`` is per query (B, Q, ...), so broadcast it (``expand_as``)."""
        raise NotImplementedError

    def skip(self, state: Encoded, coord: Tensor) -> Tensor | None:
        return None

    # -- fast-path hooks (optional) -------------------------------------------------
    def first_layer(self) -> nn.Linear | None:
        """The decoder's first layer (None: no fast path).

        The default :meth:`project` and :meth:`neighbour_hidden` take it to be linear in
        ``[code, neighbour_inputs]``; models whose first layer reads something else
        override them.
        """
        return None

    def neighbour_inputs(self, state: Encoded, nb: Neighbour, ctx: Queries) -> Tensor:
        """The first layer's inputs after the code (relative coordinate, scale...).

        ``nb`` fields may carry a leading neighbour axis that ``ctx`` lacks: expand.
        """
        raise NotImplementedError

    def fast_context(self, state: Encoded, ctx: Queries, dtype: torch.dtype) -> Queries:
        """Per-query terms of :meth:`decode_hidden`, computed once per query (in ``dtype``)."""
        return ctx

    def neighbour_hidden(self, state: Encoded, rows: Tensor, nb: Neighbour, ctx: Queries,
                         dtype: torch.dtype) -> Tensor:
        """What :meth:`decode_hidden` reads, (K*B*Q, H), from the rows of ``proj`` gathered
        at the stacked neighbours ``nb`` (a fresh tensor: may be overwritten).

        Default: the first layer's pre-activation, code part plus extras part.
        """
        extra = self.neighbour_inputs(state, nb, ctx)
        rows.addmm_(extra.reshape(rows.shape[0], -1).to(dtype), state.proj_extra)
        return rows

    def decode_hidden(self, state: Encoded, hidden: Tensor, nb: Neighbour, ctx: Queries) -> Tensor:
        """Prediction (K,B,Q,3) from :meth:`neighbour_hidden`'s output viewed (K,B,Q,H), for
        the stacked neighbours ``nb``; runs under the hidden layers' autocast."""
        raise NotImplementedError

    def query_state(self) -> tuple[str, ...]:
        """:class:`Encoded` fields the fast query reads besides ``proj`` (exported ONNX graph inputs)."""
        return ("feat",)

    @property
    def has_fast_path(self) -> bool:
        return self.first_layer() is not None

    # -- the plain path (train.query=gathered, render(fast=False), models without the hooks) --
    def query_features(self, state: Encoded) -> Tensor:
        """The map the ensemble gathers from (unfolded once per image, cached)."""
        if state.qfeat is None:
            state.qfeat = unfold3x3(state.feat) if self.feat_unfold else state.feat
        return state.qfeat

    def query(self, state: Encoded, coord: Tensor, ratio: Tensor) -> Tensor:
        """Normalised RGB ([-1, 1] scale) at ``coord`` (B,Q,2)."""
        feat = self.query_features(state)
        ratio_q = ratio[:, None, :].expand(-1, coord.shape[1], -1).to(coord.dtype)
        ctx = self.query_context(state, coord, ratio_q)
        # The four neighbours as one stack (K, B, Q, ...) through the decoder: a quarter of the
        # kernels of a loop over them (a training step on a GPU is launch-bound), and what
        # depends on the query only (ARASFSR's sine layers, LTE's phase) is broadcast, not
        # computed four times. The reference loop (models/reference.py) checks it.
        nb = gather_stacked(feat, coord, self.local_ensemble, self.ties)
        out = (self.decode(state, nb, ctx) * area_weights(nb.rel_coord).unsqueeze(-1)).sum(0)
        extra = self.skip(state, coord)
        return out if extra is None else out + extra

    # -- the fast path (inference; training differentiates it: train.query=projected) ------
    def project(self, state: Encoded, dtype: torch.dtype = torch.float32) -> None:
        """What the fast path gathers per neighbour, once per image: ``state.proj`` (B*h*w, H).

        Default: the first layer's code part at every LR position (its bias folded in)
        as ``proj``, and the weights of its extras part as ``proj_extra``.
        """
        layer = self.first_layer()
        n_code = self.code_dim(state.feat)
        state.proj = self.project_codes(state.feat, layer.weight[:, :n_code], layer.bias).to(dtype)
        state.proj_extra = layer.weight[:, n_code:].t().to(dtype)

    def code_dim(self, feat: Tensor) -> int:
        """Width of the code one query reads: C, or 9C with unfolding."""
        return feat.shape[1] * (9 if self.feat_unfold else 1)

    def project_codes(self, feat: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``weight`` (H, code_dim) applied to the (unfolded) code at every LR position:
        (B*h*w, H). unfold + per-position linear is a 3x3 convolution with zero padding."""
        k = 3 if self.feat_unfold else 1
        proj = F.conv2d(feat, weight.reshape(weight.shape[0], feat.shape[1], k, k), bias, padding=k // 2)
        return rows_of(proj)

    def query_fast(self, state: Encoded, coord: Tensor, ratio: Tensor,
                   dtype: torch.dtype = torch.float32, grid: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Same as :meth:`query` (after :meth:`project`), the 4 neighbours in one pass;
        ``dtype`` is the hidden layers' (the one given to :meth:`project`). ``grid``: see
        :attr:`Queries.grid` (``coord`` must then be that grid)."""
        b, q = coord.shape[:2]
        window = state.window
        h, w = state.feat.shape[-2:] if window is None else (window.full_h, window.full_w)
        ratio_q = ratio[:, None, :].expand(-1, q, -1).to(coord.dtype)
        ctx = self.query_context(state, coord, ratio_q)
        ctx.grid = grid
        ctx = self.fast_context(state, ctx, dtype)
        nb = locate_codes(coord, h, w, self.local_ensemble, self.ties)
        k = nb.index.shape[0]
        index, rows_per_image = (nb.index, h * w) if window is None else (window.local(nb.index), window.h * window.w)
        index = index + (torch.arange(b, device=coord.device) * rows_per_image).view(1, b, 1)
        rows = state.proj.index_select(0, index.reshape(-1))  # (K*B*Q, H): no unfolded code per query
        hidden = self.neighbour_hidden(state, rows, nb, ctx, dtype)
        # In the given dtype even where a caller's autocast (Lightning's bf16-mixed) made the
        # first layer bf16: autocast(fp32) below turns that autocast off.
        with autocast(coord.device, dtype):
            pred = self.decode_hidden(state, hidden.view(k, b, q, -1).to(dtype), nb, ctx)
        weights = area_weights(nb.rel_coord)
        out = (pred.to(coord.dtype) * weights.unsqueeze(-1)).sum(dim=0)
        extra = self.skip(state, coord)
        return out if extra is None else out + extra

    def bytes_per_query(self, fast: bool, itemsize: int = 4) -> int:
        """Rough working set of one query in a chunk (for the automatic chunk size)."""
        widths = [m.in_features + m.out_features for m in self.modules() if isinstance(m, nn.Linear)]
        widest = max(widths, default=64)
        k = 4 if self.local_ensemble else 1
        if fast:
            return k * widest * itemsize * 3 + 256
        return k * widest * 4 * 4 + 256

    def forward(self, lr: Tensor, coord: Tensor, ratio: Tensor) -> Tensor:
        state = self.encode(normalise(lr))
        return denormalise(self.query(state, coord, ratio))

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None, *,
               precision: str | None = None, fast: bool = True, tile: int | None = None) -> Tensor:
        """Super-resolve ``lr`` (B,3,h,w in [0,1]) to ``size = (H, W)``.

        ``chunk_size`` counts queries per pass over the whole batch (automatic from the
        free memory when None: :func:`arasfsr.runtime.auto_chunk_size`), so memory is
        bounded whatever the output size. ``fast=False`` forces the plain path;
        ``precision`` ("fp32", the default, keeps render equal to forward; "bf16";
        "auto") sets the fast path's dtype: in bf16 the encoder runs under autocast too.
        The fast path encodes a large input in overlapping tiles of ``tile`` LR pixels a
        side (default :func:`arasfsr.runtime.tile_side`), so that memory stays bounded
        whatever the input size; an input that fits one tile is encoded whole.
        """
        b = lr.shape[0]
        out_h, out_w = size
        fast = fast and self.has_fast_path
        dtype = compute_dtype(precision or "fp32", lr.device) if fast else torch.float32
        chunk = chunk_size or auto_chunk_size(self.bytes_per_query(fast, dtype.itemsize), lr.device, dtype.itemsize)
        per_image = max(1, chunk // b)
        inp = normalise(lr)
        ratio = scale_ratio(lr.shape[-2:], (out_h, out_w), b, lr.device).to(lr.dtype)
        out = lr.new_empty(b, 3, out_h, out_w)
        if not fast:
            state = self.encode(inp)
            for rows, cols in chunk_rects(range(out_h), range(out_w), per_image):
                c = coord_rect(out_h, out_w, rows, cols, lr.device, lr.dtype).unsqueeze(0).expand(b, -1, -1)
                out[:, :, rows.start:rows.stop, cols.start:cols.stop] = _as_image(self.query(state, c, ratio), rows, cols)
                report_progress(b * len(rows) * len(cols))
            return out
        h, w = lr.shape[-2:]
        side = tile or tile_side(h, w)
        tiles = plan_tiles((h, w), (out_h, out_w), side, TILE_MARGIN)
        # Memory stays bounded by a tile: the heap's free pages go back between tiles and
        # after the last (runtime.release_freed_memory).
        trim = len(tiles) > 1 and lr.device.type == "cpu"
        for out_rows, out_cols, window, crop in tiles:
            if trim:
                release_freed_memory()
            state = self.encode_fast(inp, dtype, window, crop)
            for rows, cols in chunk_rects(out_rows, out_cols, per_image):
                axes = grid_axes(out_h, out_w, rows, cols, lr.device, lr.dtype)
                c = grid_coord(*axes).unsqueeze(0).expand(b, -1, -1)
                pred = self.query_fast(state, c, ratio, dtype, grid=axes)
                out[:, :, rows.start:rows.stop, cols.start:cols.stop] = _as_image(pred, rows, cols)
                report_progress(b * len(rows) * len(cols))
        if trim:
            del state
            release_freed_memory()
        return out

    def encode_fast(self, inp: Tensor, dtype: torch.dtype, window: Window | None = None,
                    crop: tuple[slice, slice] | None = None) -> Encoded:
        """:meth:`encode` and :meth:`project` of normalised ``inp`` for :meth:`query_fast`.

        In reduced precision the encoder runs under autocast, channels-last (oneDNN's
        fast layout for bf16 convolutions); its map is stored back in fp32. With a
        ``window``, only ``inp[..., crop]`` is encoded and ``proj`` keeps the window's rows.
        """
        part = inp if crop is None else inp[..., crop[0], crop[1]]
        reduced = dtype != torch.float32
        with autocast(inp.device, dtype):
            state = self.encode(part.contiguous(memory_format=torch.channels_last) if reduced else part)
            if reduced:
                state.feat = state.feat.float()  # channels-last kept: rows_of is then a view
            self.project(state, dtype)
        if window is not None:
            crop_y0, crop_x0 = crop[0].start, crop[1].start
            eh, ew = part.shape[-2:]
            rows = state.proj.view(inp.shape[0], eh, ew, -1)
            rows = rows[:, window.y0 - crop_y0:window.y0 - crop_y0 + window.h,
                        window.x0 - crop_x0:window.x0 - crop_x0 + window.w]
            state.proj = rows.reshape(-1, rows.shape[-1])
            state.window = window
        state.inp = inp  # the skip reads the whole input at global coordinates
        return state


def _as_image(pred: Tensor, rows: range, cols: range) -> Tensor:
    """Normalised predictions (B, len(rows)*len(cols), 3) -> an image block (B,3,rows,cols)."""
    return denormalise(pred).transpose(1, 2).reshape(pred.shape[0], 3, len(rows), len(cols))


def chunk_rects(rows: range, cols: range, per_chunk: int) -> list[tuple[range, range]]:
    """Cover the block ``rows x cols`` with blocks of at most ``per_chunk`` pixels (whole
    rows where a row fits), in raster order."""
    width = min(len(cols), per_chunk)
    band = max(1, per_chunk // width)
    return [(range(r, min(r + band, rows.stop)), range(c, min(c + width, cols.stop)))
            for r in range(rows.start, rows.stop, band) for c in range(cols.start, cols.stop, width)]


def _tile_bounds(n: int, side: int) -> list[int]:
    """Split 0..n into about equal parts of at most ``side``: the boundaries."""
    parts = -(-n // side)
    return [round(i * n / parts) for i in range(parts + 1)]


def _first_rows(n_lr: int, n_out: int, bounds: list[int]) -> list[int]:
    """For each LR boundary, the first output row whose centre lies at or after it."""
    centre_lr = [(2 * i + 1) * n_lr // (2 * n_out) for i in range(n_out)]  # LR row under each centre
    firsts, i = [], 0
    for b in bounds:
        while i < n_out and centre_lr[i] < b:
            i += 1
        firsts.append(i)
    return firsts


def plan_tiles(lr_hw: tuple[int, int], out_hw: tuple[int, int], side: int,
               margin: int) -> list[tuple[range, range, Window | None, tuple[slice, slice] | None]]:
    """Tiles of the LR grid of at most ``side`` a side: for each, the output rows and
    columns whose pixel centres fall in it, the window of codes their queries read (the
    tile and one code around it), and the crop to encode (the window, one more pixel for
    the 3x3 projection, and ``margin`` pixels for the encoder's receptive field).

    One tile covering the grid comes back as (all rows, all columns, None, None): the
    input is encoded whole, exactly as without tiling.
    """
    (h, w), (out_h, out_w) = lr_hw, out_hw
    ys, xs = _tile_bounds(h, side), _tile_bounds(w, side)
    if len(ys) == 2 and len(xs) == 2:
        return [(range(out_h), range(out_w), None, None)]
    oys, oxs = _first_rows(h, out_h, ys), _first_rows(w, out_w, xs)
    tiles = []
    for ty in range(len(ys) - 1):
        for tx in range(len(xs) - 1):
            out_rows, out_cols = range(oys[ty], oys[ty + 1]), range(oxs[tx], oxs[tx + 1])
            if not out_rows or not out_cols:
                continue
            wy0, wy1 = max(0, ys[ty] - 1), min(h, ys[ty + 1] + 1)
            wx0, wx1 = max(0, xs[tx] - 1), min(w, xs[tx + 1] + 1)
            crop = (slice(max(0, wy0 - 1 - margin), min(h, wy1 + 1 + margin)),
                    slice(max(0, wx0 - 1 - margin), min(w, wx1 + 1 + margin)))
            tiles.append((out_rows, out_cols, Window(h, w, wy0, wx0, wy1 - wy0, wx1 - wx0), crop))
    return tiles


def grid_axes(h: int, w: int, rows: range, cols: range, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The pixel-centre y of ``rows`` and x of ``cols`` in an ``h x w`` grid."""
    iy = torch.arange(rows.start, rows.stop, device=device).to(dtype)
    ix = torch.arange(cols.start, cols.stop, device=device).to(dtype)
    return -1 + 1.0 / h + (2.0 / h) * iy, -1 + 1.0 / w + (2.0 / w) * ix


def grid_coord(ys: Tensor, xs: Tensor) -> Tensor:
    """Every (y, x) of rows ``ys`` and columns ``xs``, row-major: (len(ys)*len(xs), 2)."""
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def coord_rect(h: int, w: int, rows: range, cols: range, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """The pixel-centre coordinates of ``make_coord((h, w))`` in the block ``rows x cols``,
    (len(rows)*len(cols), 2), without building the whole grid."""
    return grid_coord(*grid_axes(h, w, rows, cols, device, dtype))


def coord_range(h: int, w: int, start: int, stop: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Rows ``start:stop`` of ``make_coord((h, w))`` without building the whole grid."""
    idx = torch.arange(start, stop, device=device)
    iy, ix = idx // w, idx % w
    return torch.stack([-1 + 1.0 / h + (2.0 / h) * iy.to(dtype), -1 + 1.0 / w + (2.0 / w) * ix.to(dtype)], dim=-1)


def normalise(img: Tensor) -> Tensor:
    return (img - 0.5) / 0.5


def denormalise(img: Tensor) -> Tensor:
    return img * 0.5 + 0.5
