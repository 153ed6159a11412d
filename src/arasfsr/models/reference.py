"""LIIF's rendering loop, on purpose slow: the reference the fast path is tested against.

The lookup, the ensemble and the chunking follow LIIF's released ``query_rgb`` and
``batched_predict`` (which ARASFSR's code keeps): per chunk of 30,000 queries the feature
map is unfolded, and for each of the four neighbours the code and its centre are read
with ``grid_sample(mode='nearest')``, the model's whole decoder runs on the
concatenated input (:meth:`ImplicitSR.decode`, so ARASFSR evaluates every sine layer
for every neighbour), and the predictions are area-weighted. What goes INTO the decoder
is the model's own (:meth:`ImplicitSR.neighbour_inputs`): for ARASFSR the paper's
formulation by default, not the authors' code (no ``q_coord``, r not 2r, pi in the
encoding, parallel sine layers; ``variant="authors"`` has theirs, checked against the
independent oracle in ``tests/authors_reference.py``). The fast path in :mod:`.core`
must give the same numbers; the tests and ``tools/bench/speed.py`` check it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .core import Encoded, ImplicitSR, Neighbour, denormalise, ensemble_weights, make_coord, normalise, scale_ratio

AUTHORS_CHUNK = 30000


def _nearest(img: Tensor, coord: Tensor) -> Tensor:
    """``img`` (B,C,h,w) read at ``coord`` (B,Q,2) by nearest sampling -> (B,Q,C)."""
    return F.grid_sample(img, coord.flip(-1).unsqueeze(1), mode="nearest",
                         align_corners=False)[:, :, 0, :].permute(0, 2, 1)


def reference_query(model: ImplicitSR, state: Encoded, coord: Tensor, ratio: Tensor) -> Tensor:
    """Normalised RGB at ``coord`` (B,Q,2), as the authors' ``query_rgb`` computes it."""
    feat = state.feat
    if model.feat_unfold:
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, *feat.shape[-2:])
    b, _, h, w = feat.shape
    feat_coord = make_coord((h, w), device=feat.device, dtype=feat.dtype)
    feat_coord = feat_coord.t().reshape(1, 2, h, w).expand(b, 2, h, w)
    shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)] if model.local_ensemble else [(0, 0)]
    eps = 1e-6 if model.ties == "up" else 0.0  # see core.locate_codes
    ratio_q = ratio[:, None, :].expand(-1, coord.shape[1], -1).to(coord.dtype)
    ctx = model.query_context(state, coord, ratio_q)
    neighbours = []
    for vy, vx in shifts:
        shifted = coord.clone()
        shifted[..., 0] += vy / h + eps
        shifted[..., 1] += vx / w + eps
        shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
        code = _nearest(feat, shifted)
        code_coord = _nearest(feat_coord, shifted)
        rel = coord - code_coord
        rel[..., 0] *= h
        rel[..., 1] *= w
        neighbours.append(Neighbour(code, rel, code_coord, index=None))
    preds = [model.decode(state, nb, ctx) for nb in neighbours]
    out = 0
    for pred, weight in zip(preds, ensemble_weights(neighbours)):
        out = out + pred * weight.unsqueeze(-1)
    extra = model.skip(state, coord)
    return out if extra is None else out + extra


@torch.no_grad()
def reference_render(model: ImplicitSR, lr: Tensor, size: tuple[int, int],
                     chunk_size: int = AUTHORS_CHUNK) -> Tensor:
    """``lr`` (B,3,h,w in [0,1]) to ``size`` (H, W) the authors' way (``batched_predict``)."""
    b = lr.shape[0]
    state = model.encode(normalise(lr))
    coord = make_coord(size, device=lr.device, dtype=lr.dtype).unsqueeze(0).expand(b, -1, -1)
    ratio = scale_ratio(lr.shape[-2:], size, b, lr.device).to(lr.dtype)
    preds = [reference_query(model, state, coord[:, i:i + chunk_size], ratio)
             for i in range(0, coord.shape[1], chunk_size)]
    pred = torch.cat(preds, dim=1)
    return denormalise(pred).transpose(1, 2).reshape(b, 3, *size)
