"""How well an uncertainty map ranks the actual error (issue 14's figures).

Per face: Spearman's rho between the map and |error| over the pixels, and over 8x8 blocks
(block means of both); AUROC of the map for the face's 10 % largest-error pixels (error
at or above the face's 90th percentile). Reported as the mean over faces; ``pooled_*``
are the same over all pixels of all faces at once (they also reward a map whose scale
agrees across faces).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from arasfsr.evaluation.uncertainty import BLOCK, auroc, top_error


def block_mean(m: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(..., H, W) -> (..., H/b, W/b) means of b x b blocks (H, W cropped to multiples of b)."""
    h, w = m.shape[-2] // block * block, m.shape[-1] // block * block
    m = m[..., :h, :w]
    return m.reshape(*m.shape[:-2], h // block, block, w // block, block).mean(axis=(-3, -1))


def face_scores(unc: np.ndarray, err: np.ndarray) -> tuple[float, float, float]:
    """(pixel rho, block rho, AUROC top-10 %) for one face's (H, W) maps."""
    u, e = unc.astype(np.float64), err.astype(np.float64)
    rho_px = spearmanr(u.ravel(), e.ravel())[0]
    rho_blk = spearmanr(block_mean(u).ravel(), block_mean(e).ravel())[0]
    return float(rho_px), float(rho_blk), auroc(u, top_error(e))


def scores(unc: np.ndarray, err: np.ndarray, pooled: bool = True,
           keep: list | None = None) -> dict[str, float]:
    """Mean over faces (and standard error) of :func:`face_scores`; (N, H, W) inputs.
    ``keep``, if given, receives the (N, 3) per-face scores (for paired comparisons)."""
    per_face = np.array([face_scores(u, e) for u, e in zip(unc, err)])
    if keep is not None:
        keep.append(per_face)
    mean = per_face.mean(axis=0)
    sem = per_face.std(axis=0, ddof=1) / np.sqrt(len(per_face)) if len(per_face) > 1 else np.zeros(3)
    out = {"rho_px": mean[0], "rho_blk": mean[1], "auroc": mean[2],
           "rho_px_se": sem[0], "rho_blk_se": sem[1], "auroc_se": sem[2], "faces": len(per_face)}
    if pooled:
        u, e = unc.astype(np.float64), err.astype(np.float64)
        out["pooled_rho_px"] = float(spearmanr(u.ravel(), e.ravel())[0])
        out["pooled_rho_blk"] = float(spearmanr(block_mean(u).ravel(), block_mean(e).ravel())[0])
        out["pooled_auroc"] = auroc(u, top_error(e))
    return {k: float(v) for k, v in out.items()}
