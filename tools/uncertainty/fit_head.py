"""Fit the shipped uncertainty head (``src/arasfsr/uncertainty_head.json``) on utkface/val.

    python -m tools.uncertainty.fit_head --cache /tmp/uncert/fit --out src/arasfsr/uncertainty_head.json

For every val face (all 200 by default) and every row (LR-HR[:degradation]), the default
model renders the SR exactly as ``upscale`` does (precision "auto"); the package's own
``arasfsr.uncertainty.head_features`` gives the two blurred features and the target is
|output - HR| of the rounded output, RGB mean, grey levels. The head is least squares of
log(1 + |error|) on [1, log(eps + G(grad)), log(eps + G(added)), log2(scale)] over 4,096
random pixels per face and row (seed 0), all rows pooled; the calibration k is
sum(|error|) / sum(predicted) over all pixels of all rows, so the map is an expected
|error|. Features are cached per face and row (``--cache``), so a refit is minutes.
Never run on a test split: the script only reads utkface/val.

    python -m tools.uncertainty.fit_head --cache DIR --out src/arasfsr/uncertainty_head.json \
        --recalibrate src/arasfsr/uncertainty_head.json --rows 16-128,32-128

keeps a head's coefficients (its ranking) and recomputes only k for today's default model,
on the given rows: what a retrained model needs when a refit does not rank better.

    python -m tools.uncertainty.fit_head --cache DIR --out src/arasfsr/uncertainty_head.json \
        --recalibrate src/arasfsr/uncertainty_head.json --model arasfsr-real \
        --rows 16-128:realistic,32-128:realistic

gives another model its own k (the head file's ``models``), fitted on the inputs it is made
for; ``upscale(..., uncertainty=True)`` uses it for that model (``arasfsr.uncertainty.head_for``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from arasfsr import load_model
from arasfsr.api import images_to_tensor
from arasfsr.evaluation.uncertainty import face_scores
from arasfsr.data import resolve_data_root
from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair
from arasfsr.uncertainty import GradientHead, effective_scale, head_features, log_prediction

DATASET = "utkface/val"
DEFAULT_MODEL = "arasfsr"
ROWS = ("12-96,16-128,24-128,32-128,48-128,64-128,"
        "16-128:nn-jpeg,32-128:nn-jpeg,16-128:mixture,32-128:mixture")
EPS, SIGMA, SCALE_RANGE = 0.1, 2.0, (1.0, 8.0)


def parse_row(text: str) -> TestRow:
    sizes, _, degradation = text.partition(":")
    lr, hr = (int(v) for v in sizes.split("-"))
    return TestRow(DATASET, lr, hr, degradation or "bicubic")


def row_name(row: TestRow) -> str:
    return f"{row.lr}-{row.hr}" + ("" if row.degradation == "bicubic" else f"-{row.degradation}")


def collect(up, faces: list[Path], rows: list[TestRow], cache: Path) -> None:
    t0 = time.perf_counter()
    for i, path in enumerate(faces):
        gt = load_ground_truth(path, DATASET)
        for row in rows:
            dest = cache / row_name(row) / f"{path.stem}.npz"
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            lr, hr = make_pair(gt, row)
            with torch.inference_mode():
                lr_t = images_to_tensor(lr[None])
                sr = up.render(lr_t, hr.shape[:2])
                grad, added = head_features(lr_t, sr, SIGMA)
            out = (sr.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
            err = np.abs(out - hr.astype(np.float32)).mean(axis=2)
            np.savez(dest, grad=grad[0, 0].numpy().astype(np.float16), added=added[0, 0].numpy().astype(np.float16),
                     err=err.astype(np.float16))
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{len(faces)} faces, {time.perf_counter() - t0:.0f} s", flush=True)


def design(d: dict, scale: float) -> np.ndarray:
    """(N, 4) rows [1, log(eps + G(grad)), log(eps + G(added)), log2(scale)] of flat features."""
    g, a = d["grad"].astype(np.float64), d["added"].astype(np.float64)
    return np.stack([np.ones_like(g), np.log(EPS + g), np.log(EPS + a), np.full_like(g, math.log2(scale))], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="folder for the per-face features")
    ap.add_argument("--out", type=Path, required=True, help="the head's JSON")
    ap.add_argument("--rows", default=ROWS, help=f"comma-separated LR-HR[:degradation] (default {ROWS})")
    ap.add_argument("--limit", type=int, default=None, help="val faces, evenly spaced (default: all)")
    ap.add_argument("--per-face", type=int, default=4096, help="random pixels per face and row in the fit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the shipped model whose errors are fitted")
    ap.add_argument("--recalibrate", type=Path, default=None, metavar="HEAD_JSON",
                    help="keep this head's coefficients and fit only its calibration k")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [parse_row(r) for r in args.rows.split(",")]
    faces = list_faces(resolve_data_root(), DATASET, args.limit)
    if args.model != DEFAULT_MODEL and args.recalibrate is None:
        sys.exit("fit_head: a model other than the default gets only its own k: add --recalibrate HEAD_JSON")
    up = load_model(args.model)  # precision "auto", as upscale runs it
    collect(up, faces, rows, args.cache)

    previous = json.loads(args.recalibrate.read_text()) if args.recalibrate else None
    rng = np.random.default_rng(0)
    xs, ys, per_row = [], [], {}
    for row in rows:
        scale = effective_scale((row.lr, row.lr), (row.hr, row.hr), GradientHead(0, 0, 0, 0, 1, SIGMA, EPS, SCALE_RANGE))
        data = [dict(np.load(args.cache / row_name(row) / f"{p.stem}.npz")) for p in faces]
        per_row[row_name(row)] = (scale, data)
        if previous is not None:
            continue  # a recalibration keeps the coefficients: no sample to fit them on
        for d in data:
            idx = rng.choice(d["err"].size, args.per_face, replace=False)
            flat = {k: v.ravel()[idx] for k, v in d.items()}
            xs.append(design(flat, scale))
            ys.append(np.log1p(flat["err"].astype(np.float64)))
    if previous is not None:
        head = replace(GradientHead.from_json(previous), calibration=1.0)
    else:
        coef = np.linalg.lstsq(np.concatenate(xs), np.concatenate(ys), rcond=None)[0]
        head = GradientHead(*map(float, coef), calibration=1.0, sigma=SIGMA, eps=EPS, scale_range=SCALE_RANGE)

    total_err = total_pred = 0.0
    report = {}
    for name, (scale, data) in per_row.items():
        preds = [torch.expm1(log_prediction(torch.from_numpy(d["grad"].astype(np.float32)),
                                            torch.from_numpy(d["added"].astype(np.float32)), scale, head))
                 .clamp(min=0).numpy() for d in data]
        errs = [d["err"].astype(np.float32) for d in data]
        e, p = float(sum(x.sum() for x in errs)), float(sum(x.sum() for x in preds))
        total_err, total_pred = total_err + e, total_pred + p
        scores = np.array([face_scores(u, x) for u, x in zip(preds, errs)]).mean(axis=0)
        report[name] = {"k": round(e / p, 4), "mean_error": round(e / sum(x.size for x in errs), 3),
                        "rho_px": round(float(scores[0]), 4), "rho_blk": round(float(scores[1]), 4),
                        "auroc": round(float(scores[2]), 4)}
        print(name, report[name], flush=True)
    head = replace(head, calibration=round(total_err / total_pred, 4))
    command = "python -m tools.uncertainty.fit_head " + shlex.join(sys.argv[1:])
    out = {"estimator": "gradient head",
           "coefficients": {"const": head.const, "grad": head.grad, "added": head.added,
                            "log2_scale": head.log2_scale},
           "calibration": head.calibration, "sigma": SIGMA, "eps": EPS, "scale_range": list(SCALE_RANGE),
           "fit": {"command": command, "data": f"{DATASET}, {len(faces)} faces", "model": f"{args.model} (precision auto)",
                   "rows": [row_name(r) for r in rows], "pixels_per_face_and_row": args.per_face, "seed": 0,
                   "target": "log(1 + |output - HR|), output rounded to 8 bits, RGB mean",
                   "calibration": "sum |error| / sum predicted over every pixel of every row",
                   "in_sample": report}}
    if previous is not None and args.model != DEFAULT_MODEL:  # the model's own k beside the default's
        own = {"calibration": head.calibration, "command": command, "data": out["fit"]["data"],
               "rows": out["fit"]["rows"], "per_row": report}
        out = {**previous, "models": {**previous.get("models", {}), args.model: own}}
    elif previous is not None:  # the coefficients' own fit stays on record
        out = {**previous, "calibration": head.calibration,
               "recalibrated": {"command": command, "data": out["fit"]["data"], "model": out["fit"]["model"],
                                "rows": out["fit"]["rows"], "calibration": out["fit"]["calibration"],
                                "previous_calibration": previous["calibration"], "per_row": report}}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["coefficients"]), "k =", head.calibration)
    print(args.out)


if __name__ == "__main__":
    main()
