"""Does the uncertainty map hold across input sizes? actual |error| / map per face and row.

    python -m tools.uncertainty_sizes --split val --limit 40 --out benchmarks/results/uncertainty-sizes/val.json
    python -m tools.uncertainty_sizes --fit benchmarks/results/uncertainty-sizes/val.json
    python -m tools.uncertainty_sizes --split test --limit 20 --rows 12-96,16-128,25-200,32-64,50-200,100-200 \
        --out benchmarks/results/uncertainty-sizes/test.json
    python -m tools.uncertainty_sizes --score benchmarks/results/uncertainty-sizes/test.json

For each row (LR -> HR at one scale; several input sizes per scale) and face of
utkface/SPLIT: the default model's output (``upscale(..., uncertainty=True)``, precision
auto) and the actual |output - HR| (RGB mean, grey levels). The map is computed without the
head's size term (its "raw" map), so that any size term can be scored from the same run: the
term is one factor per row. A face's ratio is mean actual / mean map; a row's pooled ratio
is sum actual / sum map over its faces. A ratio of 1 is a calibrated map; 0.8 means the map
over-states the error by 25 %.

``--fit`` fits the head's size term on a val JSON: least squares of the log pooled ratio
on log2 of the output side (rows of every scale pooled). ``--score`` gives each row's
ratios with the raw map and with the shipped head's size term.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tools.provenance import write_result

# The same scale at several input sizes: x8, x4, x2 (UTKFace faces are 200 px: HR <= 200).
ROWS = ("12-96", "16-128", "20-160", "25-200", "16-64", "24-96", "32-128", "50-200", "32-64", "48-96",
        "64-128", "100-200")


def measure(split: str, limit: int | None, rows: tuple[str, ...]) -> dict:
    import arasfsr
    import arasfsr.uncertainty as unc
    from arasfsr.data import resolve_data_root
    from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair

    shipped = unc.default_head()
    raw = dataclasses.replace(shipped, size_exponent=0.0)
    unc.default_head = lambda: raw  # noqa: E731  (the map upscale(..., uncertainty=True) computes)
    up = arasfsr.load_model()
    faces = list_faces(resolve_data_root(None), f"utkface/{split}", limit)
    out: dict = {"rows": {}}
    started = time.time()
    for text in rows:
        lr_side, hr_side = (int(v) for v in text.split("-"))
        row = TestRow(f"utkface/{split}", lr_side, hr_side)
        actual, mapped = [], []
        for path in faces:
            lr, hr = make_pair(load_ground_truth(path, row.dataset), row)
            sr, umap = up.upscale(lr, size=(hr_side, hr_side), uncertainty=True)
            actual.append(float(np.abs(sr.astype(np.float64) - hr).mean()))
            mapped.append(float(np.asarray(umap, np.float64).mean()))
        out["rows"][text] = {"lr": lr_side, "hr": hr_side, "scale": hr_side / lr_side, "faces": len(faces),
                             "actual": actual, "raw_map": mapped}
        print(summary_line(text, out["rows"][text], 1.0), flush=True)
    out.update({"split": split, "faces": len(faces), "model": up.name, "precision": up.precision,
                "seconds": round(time.time() - started, 1), "head": dataclasses.asdict(raw)})
    return out


def ratios(row: dict, factor: float) -> tuple[float, float]:
    """(pooled, median per face) of actual / (raw map x factor)."""
    per_face = [a / (m * factor) for a, m in zip(row["actual"], row["raw_map"]) if m > 0]
    return sum(row["actual"]) / (sum(row["raw_map"]) * factor), statistics.median(per_face)


def summary_line(text: str, row: dict, factor: float) -> str:
    pooled, median = ratios(row, factor)
    return (f"{text:>8}  x{row['scale']:<4g} actual {statistics.fmean(row['actual']):6.2f}  "
            f"map {statistics.fmean(row['raw_map']) * factor:6.2f}  pooled {pooled:.3f}  median {median:.3f}")


def fit(results: dict) -> dict:
    """The size term (exponent, reference 128 px of output) of :class:`GradientHead`."""
    rows = list(results["rows"].values())
    xs = [math.log2(r["hr"] / 128) for r in rows]
    ys = [math.log(ratios(r, 1.0)[0]) for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    residual = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys)]
    return {"exponent": round(slope / math.log(2), 4), "reference": 128.0,
            "log_ratio_at_reference": round(my - slope * mx, 4), "residual_log_sd": round(statistics.pstdev(residual), 4),
            "range": [min(r["hr"] for r in rows), max(r["hr"] for r in rows)]}


def score(results: dict) -> None:
    from arasfsr.uncertainty import default_head

    head = default_head()
    print("row        raw map: pooled, median    with the size term: pooled, median")
    for text, row in results["rows"].items():
        factor = head.size_factor((row["hr"], row["hr"]))
        (p0, m0), (p1, m1) = ratios(row, 1.0), ratios(row, factor)
        print(f"{text:>8}   {p0:.3f}  {m0:.3f}        {p1:.3f}  {m1:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=["val", "test"], default="val")
    p.add_argument("--limit", type=int, default=None, help="faces, evenly spaced in name order (default all)")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--fit", type=Path, default=None, help="fit the size term on this (val) JSON and stop")
    p.add_argument("--score", type=Path, default=None, help="each row's ratios in this JSON, raw and with the head")
    args = p.parse_args(argv)
    if args.fit is not None:
        print(json.dumps(fit(json.loads(args.fit.read_text())), indent=1))
        return 0
    if args.score is not None:
        score(json.loads(args.score.read_text()))
        return 0
    result = measure(args.split, args.limit, tuple(args.rows.split(",")))
    if args.out:
        write_result(args.out, result, "tools.uncertainty_sizes", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
