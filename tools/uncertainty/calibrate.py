"""Calibration of the chosen head (predicted |error| in grey levels) on any cache, any row.

    python -m tools.uncertainty.calibrate /tmp/uncert/val --coef /tmp/uncert/val-insample.json

Per row: k = mean actual |error| / mean predicted (the factor that makes the map an
expected |error|), the ratio actual/predicted in 10 bins of the prediction, the
percentiles of the calibrated map (for the legend) and the per-face ranking scores (which
show whether a head fitted at x4 and x8 ranks as well at other scales).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tools.uncertainty.evaluate import load_rows
from tools.uncertainty.grad_head import KEY
from tools.uncertainty.heads import LinearHead, feature_stack
from tools.uncertainty.metrics import scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--coef", type=Path, required=True)
    ap.add_argument("--k", type=float, help="a calibration factor to check (from val)")
    args = ap.parse_args()
    coef = json.loads(args.coef.read_text())["coefficients"][KEY]
    head = LinearHead()
    head.coef = np.array([coef["const"], coef["log(0.1+blur2(gsr))"], coef["log(0.1+blur2(dbic))"],
                          coef["log2_scale"]], np.float32)
    rows = sorted(p.name for p in args.cache.iterdir() if p.is_dir())
    data = load_rows(args.cache, rows)
    for row in rows:
        lr, hr = (int(v) for v in row.split("-"))
        d = data[row]
        pred = head.predict(feature_stack(d, ["gsr", "dbic"], (2.0,), extra={"s": float(np.log2(hr / lr))}))
        err = d["err"]
        k = err.mean() / pred.mean()
        qs = np.quantile(pred, np.linspace(0, 1, 11))
        b = np.clip(np.searchsorted(qs, pred.ravel(), side="right") - 1, 0, 9)
        ratio = np.bincount(b, err.ravel(), 10) / np.bincount(b, pred.ravel(), 10)
        line = (f"{row}: {len(err)} faces, mean |error| {err.mean():.2f}, mean predicted {pred.mean():.2f}, "
                f"k = {k:.3f}; actual/predicted by decile of the prediction {np.round(ratio, 2).tolist()}")
        if args.k:
            cal = args.k * pred
            line += (f"; with k = {args.k}: mean {cal.mean():.2f}, "
                     f"percentiles 50/90/99 {np.round(np.percentile(cal, [50, 90, 99]), 1).tolist()}")
        s = scores(pred, err)
        print(line + f"; rho_px {s['rho_px']:.3f} rho_blk {s['rho_blk']:.3f} auroc {s['auroc']:.3f}", flush=True)


if __name__ == "__main__":
    main()
