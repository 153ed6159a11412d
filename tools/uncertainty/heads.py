"""Learned uncertainty heads: per-pixel features -> predicted |error| (8-bit levels).

``linear``: least squares of log(1 + |error|) on [1, log(0.1 + feature), ...] (features also
taken Gaussian-blurred); exp(pred) - 1 is then a prediction of |error| in grey levels.
``conv``: a 3-layer 3x3 conv net (16 channels) on the same log features, L1 loss on
log(1 + |error|). Both are fitted on utkface/val only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tools.uncertainty.estimators import gaussian_blur

EPS = 0.1


def feature_stack(maps: dict[str, np.ndarray], names: list[str], sigmas: tuple[float, ...] = (0.0, 2.0),
                  extra: dict[str, float] | None = None) -> np.ndarray:
    """(N, F, H, W) log features of one row's maps; ``extra`` adds constant planes (log scale)."""
    n, h, w = maps[names[0]].shape
    planes = []
    for name in names:
        for s in sigmas:
            planes.append(np.stack([np.log(EPS + gaussian_blur(m.astype(np.float32), s)) for m in maps[name]]))
    for value in (extra or {}).values():
        planes.append(np.full((n, h, w), value, np.float32))
    return np.stack(planes, axis=1).astype(np.float32)


def target(err: np.ndarray) -> np.ndarray:
    return np.log1p(err.astype(np.float32))


class LinearHead:
    def fit(self, x: np.ndarray, err: np.ndarray, per_face: int = 4096, seed: int = 0) -> "LinearHead":
        rng = np.random.default_rng(seed)
        n, f, h, w = x.shape
        idx = np.stack([rng.choice(h * w, per_face, replace=False) for _ in range(n)])
        xs = np.take_along_axis(x.reshape(n, f, -1), idx[:, None, :], axis=2).transpose(0, 2, 1).reshape(-1, f)
        ys = np.take_along_axis(target(err).reshape(n, -1), idx, axis=1).reshape(-1)
        a = np.concatenate([np.ones((len(xs), 1), np.float32), xs], axis=1)
        self.coef = np.linalg.lstsq(a, ys, rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted |error| in grey levels, (N, H, W)."""
        z = self.coef[0] + np.einsum("nfhw,f->nhw", x, self.coef[1:])
        return np.expm1(z).clip(min=0)


class ConvHead(nn.Module):
    def __init__(self, features: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(features, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]

    def fit(self, x: np.ndarray, err: np.ndarray, steps: int = 300, crop: int = 48, batch: int = 8,
            seed: int = 0) -> "ConvHead":
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.mu = x.mean(axis=(0, 2, 3), keepdims=True)
        self.sd = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
        xt = torch.from_numpy((x - self.mu) / self.sd)
        yt = torch.from_numpy(target(err))
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        n, _, h, w = x.shape
        for _ in range(steps):
            i = rng.integers(0, n, batch)
            y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            pred = self(xt[i, :, y0:y0 + crop, x0:x0 + crop])
            loss = (pred - yt[i, y0:y0 + crop, x0:x0 + crop]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        return self

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self(torch.from_numpy((x - self.mu) / self.sd)).numpy()
        return np.expm1(z).clip(min=0)


