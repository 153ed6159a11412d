"""How well an uncertainty map finds the actual error, and the command behind
``arasfsr eval-uncertainty``.

Per face, with |error| = |output - HR| averaged over RGB (grey levels):

- ``rho_px``: Spearman's rho between the map and |error| over the face's pixels;
- ``rho_blk``: the same over 8x8 blocks (block means of both);
- ``auroc``: the map as a detector of the face's 10 % largest-error pixels (|error| at or
  above its 90th percentile): area under the ROC curve, ties counted half.

Reported as means over faces (with standard errors), for the shipped estimator and for the
gradient baseline (:func:`arasfsr.uncertainty.gradient_baseline`).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

TOP = 0.10
BLOCK = 8
METRICS = ("rho_px", "rho_blk", "auroc")
ESTIMATORS = {"estimator": "gradient head (`upscale --uncertainty`)",
              "baseline": "Sobel magnitude of the bicubic up-sampling"}


def block_mean(m: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(H, W) -> (H/b, W/b) means of b x b blocks (H, W cut down to multiples of b)."""
    h, w = m.shape[0] // block * block, m.shape[1] // block * block
    return m[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN if either side is constant."""
    ra, rb = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``positive`` (Mann-Whitney U, ties half)."""
    score, positive = np.ravel(score), np.ravel(positive).astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def top_error(err: np.ndarray, top: float = TOP) -> np.ndarray:
    return err >= np.quantile(err, 1 - top)


def face_scores(unc: np.ndarray, err: np.ndarray) -> tuple[float, float, float]:
    """(rho_px, rho_blk, auroc) of one face's (H, W) map against its (H, W) |error|."""
    u, e = np.asarray(unc, np.float64), np.asarray(err, np.float64)
    return spearman(u, e), spearman(block_mean(u), block_mean(e)), auroc(u, top_error(e))


def summarise(per_face: np.ndarray) -> dict[str, float]:
    """Means over faces (NaNs, from constant faces, left out) and standard errors."""
    out: dict[str, float] = {}
    for i, name in enumerate(METRICS):
        v = per_face[:, i][np.isfinite(per_face[:, i])]
        out[name] = float(v.mean()) if len(v) else float("nan")
        out[f"{name}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    out["faces"] = int(len(per_face))
    return out


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Per-face differences a - b: mean, standard error and the share of faces where a is higher."""
    d = a - b
    out: dict[str, float] = {}
    for i, name in enumerate(METRICS):
        v = d[:, i][np.isfinite(d[:, i])]
        out[name] = float(v.mean())
        out[f"{name}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out[f"{name}_faces_better"] = float((v > 0).mean())
    return out


# --- binned curve: actual error against the map --------------------------------------

BINS = 20


def binned_by_percentile(maps: list[np.ndarray], errs: list[np.ndarray], bins: int = BINS) -> list[float]:
    """Mean |error| of the pixels in each of ``bins`` bins of their map's percentile within
    their own face (the ranking the metrics judge), lowest first."""
    total, count = np.zeros(bins), np.zeros(bins)
    for u, e in zip(maps, errs):
        pct = (rankdata(u.ravel()) - 0.5) / u.size
        b = np.minimum((pct * bins).astype(int), bins - 1)
        total += np.bincount(b, e.ravel(), bins)
        count += np.bincount(b, minlength=bins)
    return (total / np.maximum(count, 1)).tolist()


def binned_by_value(maps: list[np.ndarray], errs: list[np.ndarray], edges: np.ndarray) -> dict[str, list[float]]:
    """Pixels binned by the map's value (grey levels): mean predicted, mean actual |error|
    and pixel count per bin (empty bins dropped); the calibration of an expected-error map."""
    u = np.concatenate([m.ravel() for m in maps])
    e = np.concatenate([x.ravel() for x in errs])
    b = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(b, minlength=len(edges) - 1)
    keep = n > 0
    return {"predicted": (np.bincount(b, u, len(n))[keep] / n[keep]).tolist(),
            "actual": (np.bincount(b, e, len(n))[keep] / n[keep]).tolist(),
            "pixels": n[keep].tolist()}


# --- the evaluation run ----------------------------------------------------------------


@dataclass
class UncertaintyEvalConfig:
    out: Path
    model: str = "arasfsr"
    rows: tuple[str, ...] = ("16-128", "32-128")  # LR-HR[:degradation]
    dataset: str = "utkface/test"
    data_root: Path | None = None
    limit: int | None = None
    device: str = "cpu"
    precision: str = "auto"
    overwrite: bool = False


def parse_row(text: str, dataset: str):
    """``16-128`` or ``32-128:nn-jpeg`` -> a TestRow (InputError if malformed)."""
    from ..data.degrade import DEGRADATIONS
    from ..errors import InputError
    from ..protocols import TestRow

    sizes, _, degradation = text.partition(":")
    parts = sizes.split("-")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"row {text!r}: use LR-HR such as 16-128, optionally :DEGRADATION")
    degradation = degradation or "bicubic"
    if degradation not in DEGRADATIONS:
        raise InputError(f"row {text!r}: unknown degradation {degradation!r}; choose from {', '.join(DEGRADATIONS)}")
    return TestRow(dataset, int(parts[0]), int(parts[1]), degradation)


OUTPUTS = ("results.json", "results.md", "uncertainty_vs_error.png")


def run_uncertainty_eval(cfg: UncertaintyEvalConfig) -> dict:
    """Score the shipped map and the baseline on ``cfg.rows``; write results.json,
    results.md and uncertainty_vs_error.png into ``cfg.out``."""
    from ..api import load_model
    from ..data import resolve_data_root
    from ..imageio import make_output_dir, refuse_existing, remove_empty_dirs
    from ..protocols import list_faces

    rows = [parse_row(r, cfg.dataset) for r in cfg.rows]
    faces = list_faces(resolve_data_root(cfg.data_root), cfg.dataset, cfg.limit)
    for name in OUTPUTS:
        refuse_existing(cfg.out / name, cfg.overwrite)
    created = make_output_dir(cfg.out)  # probed before the work; removed again if the run fails
    try:
        up = load_model(cfg.model, device=cfg.device, precision=cfg.precision, force_model=True)
        results = _score(cfg, up, rows, faces)
        write_results(results, cfg.out)
    except BaseException:
        remove_empty_dirs(created)
        raise
    return results


def _score(cfg: UncertaintyEvalConfig, up, rows: list, faces: list[Path], progress: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    from ..api import images_to_tensor
    from ..protocols import load_ground_truth, make_pair
    from ..uncertainty import HEAT_MAX, gradient_baseline, head_for
    from .runner import weights_sha256

    edges = np.linspace(0, HEAT_MAX * 1.5, 37)
    started, cpu0 = time.perf_counter(), time.process_time()
    timing = {"upscale_s": 0.0, "map_s": 0.0}
    results: dict = {"rows": []}
    for row in rows:
        per_face = {k: [] for k in ESTIMATORS}
        maps: dict[str, list[np.ndarray]] = {k: [] for k in ESTIMATORS}
        errs: list[np.ndarray] = []
        for path in tqdm(faces, desc=f"{row.lr}-{row.hr} {row.degradation}", unit="face", disable=not progress,
                         file=sys.stderr):
            lr, hr = make_pair(load_ground_truth(path, cfg.dataset), row)
            t0 = time.perf_counter()
            out, unc = up.upscale(lr, size=(row.hr, row.hr), uncertainty=True)
            timing["upscale_s"] += time.perf_counter() - t0
            with torch.inference_mode():
                base = gradient_baseline(images_to_tensor(lr[None]), hr.shape[:2])[0].numpy()
            err = np.abs(out.astype(np.float32) - hr.astype(np.float32)).mean(axis=2)
            for key, m in (("estimator", unc), ("baseline", base)):
                per_face[key].append(face_scores(m, err))
                maps[key].append(m.astype(np.float32))
            errs.append(err)
        scores = {k: np.array(v) for k, v in per_face.items()}
        entry = {"row": row.as_dict(), "faces": len(faces),
                 **{k: summarise(v) for k, v in scores.items()},
                 "estimator_minus_baseline": paired(scores["estimator"], scores["baseline"]),
                 "mean_error": float(np.mean([e.mean() for e in errs])),
                 "mean_map": float(np.mean([m.mean() for m in maps["estimator"]])),
                 "curve_by_percentile": {k: binned_by_percentile(maps[k], errs) for k in ESTIMATORS},
                 "calibration": binned_by_value(maps["estimator"], errs, edges)}
        results["rows"].append(entry)
    head = head_for(up.name)
    results.update({
        "model": up.name, "sha256": weights_sha256(cfg.model), "dataset": cfg.dataset, "faces": len(faces),
        "limit": cfg.limit,
        "device": cfg.device, "precision": cfg.precision,
        "metrics": {"rho_px": "Spearman, map vs |error| over a face's pixels; mean over faces",
                    "rho_blk": f"Spearman over {BLOCK}x{BLOCK}-block means; mean over faces",
                    "auroc": f"AUROC of the map for the face's top {TOP:.0%} |error| pixels; mean over faces",
                    "error": "|output - HR|, output rounded to 8 bits, RGB mean, grey levels"},
        "estimators": ESTIMATORS, "head": {"coefficients": head.__dict__},
        "command": "arasfsr " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name == "arasfsr" else None,
        "time": {"wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time() - cpu0, 1),
                 "upscale_with_map_s": round(timing["upscale_s"], 1),
                 "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"},
    })
    return results


def render_markdown(results: dict) -> str:
    lines = [f"# Uncertainty maps: `{results['model']}` on {results['dataset']} ({results['faces']} faces)", ""]
    if results.get("command"):
        lines += [f"`{results['command']}`", ""]
    lines += ["Mean over faces (± standard error). " + "; ".join(f"{k}: {v}" for k, v in results["metrics"].items())
              + ".", "",
              "| row | map | ρ pixel | ρ 8×8 block | AUROC top 10 % |", "|---|---|---|---|---|"]
    for r in results["rows"]:
        label = f"{r['row']['lr_size'][0]}→{r['row']['hr_size'][0]} {r['row']['degradation']}"
        for key, title in ESTIMATORS.items():
            s = r[key]
            lines.append(f"| {label} | {title} | " + " | ".join(f"{s[m]:.3f} ± {s[m + '_se']:.3f}" for m in METRICS)
                         + " |")
        d = r["estimator_minus_baseline"]
        lines.append(f"| {label} | difference (paired) | " + " | ".join(
            f"{d[m]:+.3f} ± {d[m + '_se']:.3f} ({d[m + '_faces_better']:.0%} of faces)" for m in METRICS) + " |")
    lines += ["", "Calibration (mean over pixels, grey levels): " + "; ".join(
        f"{r['row']['lr_size'][0]}→{r['row']['hr_size'][0]} {r['row']['degradation']}: map {r['mean_map']:.2f}, "
        f"actual |error| {r['mean_error']:.2f}" for r in results["rows"]) + ".", "",
        f"Time: {results['time']['wall_s']} s wall ({results['time']['machine']}, load average "
        f"{results['time']['load_average']} at the end).", "", "![uncertainty vs error](uncertainty_vs_error.png)", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    """Left: mean |error| by the map's within-face percentile (estimator and baseline).
    Right: actual against predicted |error| (the estimator's calibration)."""
    from matplotlib.figure import Figure

    from .plots import _save

    rows = results["rows"]
    fig = Figure(figsize=(10, 3.8 * len(rows)), dpi=100)
    for i, r in enumerate(rows):
        label = f"{r['row']['lr_size'][0]}→{r['row']['hr_size'][0]} {r['row']['degradation']}"
        ax = fig.add_subplot(len(rows), 2, 2 * i + 1)
        for key, title in ESTIMATORS.items():
            curve = r["curve_by_percentile"][key]
            xs = (np.arange(len(curve)) + 0.5) / len(curve) * 100
            s = r[key]
            ax.plot(xs, curve, marker="o", ms=3,
                    label=f"{title.split(' (')[0]}: ρ blk {s['rho_blk']:.2f}, AUROC {s['auroc']:.2f}")
        ax.axhline(r["mean_error"], color="grey", lw=0.8, ls=":", label="mean |error|")
        ax.set(title=f"{label} ({r['faces']} faces): |error| by map percentile",
               xlabel="map percentile within the face", ylabel="mean |SR − HR| (grey levels)")
        ax.legend(fontsize=7)
        ax = fig.add_subplot(len(rows), 2, 2 * i + 2)
        cal = r["calibration"]
        ax.plot(cal["predicted"], cal["actual"], marker="o", ms=3, label="gradient head")
        top = max(max(cal["predicted"]), max(cal["actual"]))
        ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="ideal")
        ax.set(title=f"{label}: actual vs predicted |error|", xlabel="map value (expected |error|, grey levels)",
               ylabel="mean actual |error| (grey levels)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_results(results: dict, out: Path) -> None:
    from .report import write_text_atomic

    write_text_atomic(out / "results.json", json.dumps(results, indent=1))
    write_text_atomic(out / "results.md", render_markdown(results))
    plot(results, out / "uncertainty_vs_error.png")
