"""Score every candidate on cached maps (collect.py) and fit/score the learned heads.

    python -m tools.uncertainty.evaluate /tmp/uncert/val --out /tmp/uncert/val-scores.json
    python -m tools.uncertainty.evaluate /tmp/uncert/test --fit-on /tmp/uncert/val --only gbic:2,head \\
        --out /tmp/uncert/test-scores.json

On val the heads are scored out-of-fold (5-fold cross-validation by face); with
``--fit-on`` they are fitted on all of that folder's faces and applied to this one.
Candidate names are ``MAP:SIGMA`` (a raw map, Gaussian-blurred by SIGMA output pixels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tools.uncertainty.estimators import gaussian_blur
from tools.uncertainty.heads import ConvHead, LinearHead, feature_stack
from tools.uncertainty.metrics import scores

RAW = ("gbic", "gsr", "dbic", "ens", "lat4", "lat8", "flip", "shift", "tta")
SIGMAS = (0.0, 1.0, 2.0, 4.0, 8.0)
HEADS = {  # name -> (model, features[, blur sigmas of each feature])
    "lin-ens+gbic": ("linear", ["ens", "gbic"]),
    "lin-cheap": ("linear", ["ens", "gbic", "gsr", "dbic"]),
    "lin-cheap-noens": ("linear", ["gbic", "gsr", "dbic"]),
    "lin-cheap-noens-s024": ("linear", ["gbic", "gsr", "dbic"], (0.0, 2.0, 4.0)),
    "lin-gsr+dbic": ("linear", ["gsr", "dbic"]),
    "lin-gsr+dbic-s2": ("linear", ["gsr", "dbic"], (2.0,)),
    "lin-cheap+flip": ("linear", ["ens", "gbic", "gsr", "dbic", "flip"]),
    "lin-cheap+lat4": ("linear", ["ens", "gbic", "gsr", "dbic", "lat4"]),
    "lin-cheap+tta": ("linear", ["ens", "gbic", "gsr", "dbic", "tta"]),
    "lin-noens+tta": ("linear", ["gbic", "gsr", "dbic", "tta"]),
    "lin-all": ("linear", ["ens", "gbic", "gsr", "dbic", "lat8", "tta"]),
    "conv-cheap-noens": ("conv", ["gbic", "gsr", "dbic"]),
    "conv-all": ("conv", ["ens", "gbic", "gsr", "dbic", "lat8", "tta"]),
}


def load_row(folder: Path, stems: set[str] | None = None) -> dict[str, np.ndarray]:
    files = sorted(f for f in folder.glob("*.npz") if stems is None or f.stem in stems)
    first = np.load(files[0])
    return {k: np.stack([np.load(f)[k] for f in files]).astype(np.float32) for k in first.files}


def load_rows(cache: Path, rows: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Every row's maps, on the faces that all rows have (the same order in each)."""
    stems = set.intersection(*({f.stem for f in (cache / r).glob("*.npz")} for r in rows))
    return {r: load_row(cache / r, stems) for r in rows}


def blurred(maps: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_blur(m, sigma) for m in maps]) if sigma > 0 else maps


def make_head(kind: str, n_features: int):
    return (lambda: LinearHead()) if kind == "linear" else (lambda: ConvHead(n_features))


COEFFICIENTS: dict[str, dict[str, float]] = {}  # fitted linear heads (with --fit-on)


def scale_plane(row: str) -> dict[str, float]:
    lr, hr = (int(v) for v in row.split("-"))
    return {"log2_scale": float(np.log2(hr / lr))}


def fit_predict(kind: str, feats: list[str], rows: list[str], data: dict, fit: dict | None,
                error: str, sigmas: tuple[float, ...] = (0.0, 2.0), with_scale: bool = True) -> dict[str, np.ndarray]:
    """Predictions per row of one head fitted on ``rows`` together (a log2-scale plane added
    when there are several and ``with_scale``): out-of-fold on ``data`` without ``fit``,
    else fitted on ``fit``."""
    extra = len(rows) > 1 and with_scale

    def stack(d: dict) -> tuple[np.ndarray, np.ndarray]:
        xs = [feature_stack(d[r], feats, sigmas, extra=scale_plane(r) if extra else None) for r in rows]
        return np.concatenate(xs), np.concatenate([d[r][error] for r in rows])

    x, err = stack(data)
    make = make_head(kind, x.shape[1])
    if fit is None:
        n = len(data[rows[0]][error])
        # Folds by face, so a face's rows never sit on both sides.
        pred = np.empty(err.shape, np.float32)
        face = np.tile(np.arange(n), len(rows))
        for k in range(5):
            test = face % 5 == k
            pred[test] = make().fit(x[~test], err[~test]).predict(x[test])
    else:
        fx, ferr = stack(fit)
        head = make().fit(fx, ferr)
        pred = head.predict(x)
        if kind == "linear":
            names = [f"log(0.1+blur{s:g}({f}))" for f in feats for s in sigmas] + (["log2_scale"] if extra else [])
            COEFFICIENTS["+".join(rows) + ":" + ",".join(feats)] = dict(zip(["const"] + names, map(float, head.coef)))
            print("coefficients", rows, feats, np.round(head.coef, 4).tolist(), flush=True)
    return dict(zip(rows, np.split(pred, len(rows))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path, help="folder with one sub-folder per row (16-128, 32-128)")
    ap.add_argument("--fit-on", type=Path, help="fit heads on this cache instead of cross-validating")
    ap.add_argument("--only", help="comma-separated candidates (MAP:SIGMA or head names)")
    ap.add_argument("--error", default="err", choices=("err", "err_y"))
    ap.add_argument("--paired-vs", help="comma-separated: also report each candidate's per-face difference from these")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    only = set(args.only.split(",")) if args.only else None
    rows = sorted(p.name for p in args.cache.iterdir() if p.is_dir())
    data = load_rows(args.cache, rows)
    fit = load_rows(args.fit_on, rows) if args.fit_on else None
    results: dict[str, dict] = {r: {} for r in rows}

    per_face: dict[tuple[str, str], np.ndarray] = {}

    def record(row: str, key: str, unc: np.ndarray) -> None:
        keep: list = []
        results[row][key] = scores(unc, data[row][args.error], keep=keep)
        per_face[row, key] = keep[0]
        print(row, key, {k: round(v, 3) for k, v in results[row][key].items() if "se" not in k}, flush=True)

    for row in rows:
        for name in RAW:
            for s in SIGMAS:
                key = f"{name}:{s:g}"
                if name in data[row] and (only is None or key in only):
                    record(row, key, blurred(data[row][name], s))
    for head, (kind, feats, *sigmas) in HEADS.items():
        for group, suffix in ([[r] for r in rows], ""), ([rows], "@both"), ([rows], "@pool"):
            name = head + suffix
            if (only is not None and name not in only) or not all(f in data[rows[0]] for f in feats):
                continue
            for rs in group:
                for row, pred in fit_predict(kind, feats, rs, data, fit, args.error, *(sigmas or [(0.0, 2.0)]),
                                             with_scale=suffix != "@pool").items():
                    record(row, name, pred)
    for ref in (args.paired_vs.split(",") if args.paired_vs else []):
        for (row, key), values in per_face.items():
            base = per_face.get((row, ref))
            if base is None or key == ref:
                continue
            diff = values - base
            se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff))
            paired = results[row][key].setdefault("vs", {})[ref] = {}
            for i, name in enumerate(("rho_px", "rho_blk", "auroc")):
                paired[name] = float(diff[:, i].mean())
                paired[f"{name}_se"] = float(se[i])
                paired[f"{name}_faces_better"] = float((diff[:, i] > 0).mean())
            print(row, key, "minus", ref, np.round(diff.mean(axis=0), 3), "+-", np.round(se, 3),
                  "faces better:", np.round((diff > 0).mean(axis=0), 2), flush=True)
    if COEFFICIENTS:
        results["coefficients"] = COEFFICIENTS
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
