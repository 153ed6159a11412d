"""Binned plot: actual |error| against the uncertainty, for chosen candidates (test cache, heads fitted on val).

    python -m tools.uncertainty.plot /tmp/uncert/test --fit-on /tmp/uncert/val \\
        --candidates gbic:0,lin-cheap@both --out /work/brief/uncertainty-calibration.png

Left: pixels binned by the percentile of their uncertainty within their face (20 bins);
mean |error| per bin. Right (heads only, which predict |error| in grey levels): pixels
binned by the predicted value; mean actual |error| per bin against the prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from tools.uncertainty.evaluate import HEADS, blurred, fit_predict, load_rows  # noqa: E402


def candidate_maps(name: str, rows: list[str], data: dict, fit: dict) -> dict[str, np.ndarray]:
    head, _, suffix = name.partition("@")
    if head in HEADS:
        kind, feats, *sigmas = HEADS[head]
        if suffix in ("both", "pool"):
            return fit_predict(kind, feats, rows, data, fit, "err", *sigmas, with_scale=suffix == "both")
        return {r: fit_predict(kind, feats, [r], data, fit, "err", *sigmas)[r] for r in rows}
    raw, _, sigma = name.partition(":")
    return {r: blurred(data[r][raw], float(sigma or 0)) for r in rows}


def within_face_percentile(unc: np.ndarray) -> np.ndarray:
    return np.stack([(rankdata(u.ravel()) / u.size).reshape(u.shape) for u in unc])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--fit-on", type=Path, required=True)
    ap.add_argument("--candidates", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = sorted(p.name for p in args.cache.iterdir() if p.is_dir())
    data = load_rows(args.cache, rows)
    fit = load_rows(args.fit_on, rows)
    names = args.candidates.split(",")
    maps = {n: candidate_maps(n, rows, data, fit) for n in names}
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 4 * len(rows)), squeeze=False)
    edges = np.linspace(0, 1, 21)
    for i, row in enumerate(rows):
        err = data[row]["err"]
        ax = axes[i, 0]
        for n in names:
            pct = within_face_percentile(maps[n][row]).ravel()
            b = np.clip(np.digitize(pct, edges) - 1, 0, 19)
            mean = np.bincount(b, err.ravel(), 20) / np.bincount(b, minlength=20)
            ax.plot((edges[:-1] + edges[1:]) / 2 * 100, mean, marker="o", ms=3, label=n)
        ax.axhline(err.mean(), color="grey", lw=0.8, ls=":", label="mean |error|")
        ax.set(title=f"{row} ({len(err)} faces): |error| by uncertainty percentile",
               xlabel="uncertainty percentile within the face", ylabel="mean |SR - HR| (grey levels, RGB mean)")
        ax.legend(fontsize=8)
        ax = axes[i, 1]
        for n in names:
            if n.partition("@")[0] not in HEADS:
                continue
            pred = maps[n][row].ravel()
            qs = np.quantile(pred, np.linspace(0, 1, 21))
            b = np.clip(np.searchsorted(qs, pred, side="right") - 1, 0, 19)
            counts = np.bincount(b, minlength=20)
            ok = counts > 0
            xs = (np.bincount(b, pred, 20)[ok] / counts[ok])
            ys = (np.bincount(b, err.ravel(), 20)[ok] / counts[ok])
            ax.plot(xs, ys, marker="o", ms=3, label=n)
        lim = ax.get_xlim()[1] if ax.lines else 1
        ax.plot([0, lim], [0, lim], color="grey", lw=0.8, ls="--", label="ideal")
        ax.set(title=f"{row}: calibration of the predicted |error|", xlabel="predicted |error| (grey levels)",
               ylabel="actual mean |error| (grey levels)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
