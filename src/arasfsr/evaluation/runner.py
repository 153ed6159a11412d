"""Evaluate models on a protocol's test rows; shard faces across ranks under ``torchrun``.

Every face is scored on its own (PSNR/SSIM per face), then averaged per model and row.
Under ``torchrun`` rank r takes faces r, r + W, r + 2W, ... of each set; rank 0 gathers
the per-face scores and sums them in face order, so the result is exactly the
single-process result.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..api import Upscaler, load_model
from ..data import resolve_data_root
from ..errors import InputError
from ..imageio import make_output_dir, refuse_existing, remove_empty_dirs
from ..protocols import (FFHQ_CROP, Protocol, TestRow, get_protocol, list_faces, load_ground_truth, make_pair,
                         utkface_groups)
from ..registry import resolve
from .metrics import DEFINITIONS, METRICS, face_metrics

BASELINE = "bicubic"


@dataclass
class EvalConfig:
    protocol: str
    out: Path
    models: list[str] = field(default_factory=list)
    data_root: Path | None = None
    tier: str = "custom"
    limit: int | None = None
    only: list[str] | None = None  # row keys or "LR-HR" sizes to keep (default: every row)
    split: str = "test"  # val: the rows' faces from the val split (model selection), where a set has one
    device: str = "cpu"
    precision: str = "fp32"  # the implicit decoders'; fp32 gives the exact metrics
    batch_size: int = 16
    chunk_size: int | None = None
    pictures: bool = True
    overwrite: bool = False


def weights_sha256(name: str | Path) -> str | None:
    """The SHA-256 of a model's weights file (None without one): which weights a result
    scored, so that a table of a model retrained since can say so."""
    weights = resolve(name, trained=True).weights
    return file_sha256(weights) if weights else None


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_models(names: list[str], device: str | torch.device = "cpu",
                precision: str = "fp32") -> list[Upscaler]:
    """The named models, bicubic first (always included), each under a distinct name."""
    ordered = [BASELINE] + [n for n in names if n != BASELINE]
    models: list[Upscaler] = []
    seen: set[str] = set()
    for name in dict.fromkeys(ordered):
        up = load_model(name, device=device, precision=precision, force_model=True)  # the model's own output
        up.weights_sha256 = weights_sha256(name)
        label, k = up.name, 2
        while label in seen:  # two checkpoints with the same file name
            label, k = f"{up.name}-{k}", k + 1
        up.name = label
        seen.add(label)
        models.append(up)
    return models


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard(items: list, rank: int, world: int) -> list[tuple[int, object]]:
    """(index, item) pairs this rank evaluates: every ``world``-th item from ``rank``."""
    return [(i, item) for i, item in enumerate(items) if i % world == rank]


def score_faces(models: list[Upscaler], rows: tuple[TestRow, ...], faces: dict[str, list[Path]],
                rank: int = 0, world: int = 1, batch_size: int = 16,
                chunk_size: int | None = None) -> list[tuple]:
    """Per-face records ``(model, row key, face index, file name, psnr, ssim, ssim_matlab)``.

    Each face is read once and turned into every row of its dataset.
    """
    records: list[tuple] = []
    mine = {ds: shard(files, rank, world) for ds, files in faces.items()}
    total = sum(len(mine[r.dataset]) for r in rows) * len(models)
    # Closed on an error too, so that the error is printed on a line of its own.
    with tqdm(total=total, desc=f"eval rank {rank}" if world > 1 else "eval", unit="face",
              disable=rank != 0, file=sys.stderr, dynamic_ncols=True) as bar:
        for dataset, items in mine.items():
            ds_rows = [r for r in rows if r.dataset == dataset]
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                gts = [load_ground_truth(path, dataset) for _, path in batch]
                for row in ds_rows:
                    pairs = [make_pair(gt, row) for gt in gts]
                    lr = np.stack([p[0] for p in pairs])
                    for up in models:
                        sr = up.upscale_batch(lr, size=(row.hr, row.hr), chunk_size=chunk_size)
                        for (index, path), s, (_, hr) in zip(batch, sr, pairs):
                            m = face_metrics(s, hr)
                            records.append((up.name, row.key, index, path.name, *(m[k] for k in METRICS)))
                        bar.update(len(batch))
    return records


def gather_records(records: list[tuple], world: int) -> list[tuple] | None:
    """All ranks' records on rank 0 (``None`` on the others)."""
    if world == 1:
        return records
    import torch.distributed as dist

    everything: list = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(records, everything, dst=0)
    if dist.get_rank() != 0:
        return None
    return [r for part in everything for r in part]


def _mean(values: list[tuple]) -> dict[str, float]:
    # values: per-face metric tuples, already in face order (fixes the summation order)
    sums = [0.0] * len(METRICS)
    for v in values:
        for k, x in enumerate(v):
            sums[k] += x
    n = len(values)
    return {**{m: sums[k] / n for k, m in enumerate(METRICS)}, "count": n}


def aggregate(records: list[tuple], models: list[str], rows: tuple[TestRow, ...]) -> list[dict]:
    """Mean metrics per (model, row), plus per-group means on UTKFace."""
    by_cell: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r[0], r[1], r[2])):
        by_cell[rec[0], rec[1]].append(rec)
    results = []
    for model in models:
        for row in rows:
            cell = by_cell.get((model, row.key), [])
            if not cell:
                continue
            entry = {"model": model, "row": row.key, "dataset": row.dataset,
                     "degradation": row.degradation, "lr_size": list(row.lr_size),
                     "hr_size": list(row.hr_size), "scale": row.scale, "label": row.label,
                     "note": row.note, **_mean([r[4:] for r in cell])}
            if row.dataset.startswith("utkface"):
                groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
                for r in cell:
                    for kind, value in utkface_groups(r[3]).items():
                        groups[kind][value].append(r[4:])
                entry["groups"] = {kind: {v: _mean(vals) for v, vals in sorted(values.items())}
                                   for kind, values in groups.items()}
            results.append(entry)
    return results


def prepare_out(out: Path, overwrite: bool) -> list[Path]:
    """Fail before any work if --out cannot take the results; returns the folders it created."""
    refuse_existing(out / "results.json", overwrite)
    return make_output_dir(out)


def run_eval(cfg: EvalConfig) -> dict | None:
    """Evaluate, then (rank 0) write results.json, results.md and the pictures into cfg.out.

    Returns the results on rank 0, ``None`` on other ranks.
    """
    protocol = get_protocol(cfg.protocol)
    rows = protocol.rows
    if cfg.only:
        rows = [r for r in rows if f"{r.lr}-{r.hr}" in cfg.only or r.key in cfg.only]
        if not rows:
            raise InputError(f"--only {' '.join(cfg.only)}: no row of protocol {cfg.protocol} matches "
                             "(give sizes as LR-HR, e.g. 16-128)")
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be at least 1, got {cfg.limit}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    data_root = resolve_data_root(cfg.data_root)
    if cfg.split != "test":
        rows = split_rows(rows, cfg.split, data_root)
    faces = {ds: list_faces(data_root, ds, cfg.limit) for ds in dict.fromkeys(r.dataset for r in rows)}
    rank, world = dist_info()
    device = cfg.device
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % max(1, torch.cuda.device_count())}"
    models = load_models(cfg.models, device, cfg.precision)
    created = prepare_out(cfg.out, cfg.overwrite)  # every rank, so a refusal stops them all before any work
    try:
        return _evaluate(cfg, protocol, rows, data_root, faces, models, rank, world)
    except BaseException:
        remove_empty_dirs(created)  # a bad face or a failure: no empty --out left behind
        raise


SPLITS = ("test", "val")


def split_rows(rows: list[TestRow], split: str, data_root: Path) -> list[TestRow]:
    """The rows on the ``split`` faces of their sets (``utkface/test`` -> ``utkface/val``); sets
    without that split (ffhq has only test faces) are left out."""
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: choose from {', '.join(SPLITS)}")
    moved = [replace(r, dataset=f"{r.dataset.rpartition('/')[0]}/{split}") for r in rows]
    kept = list(dict.fromkeys(r for r in moved if (Path(data_root) / r.dataset).is_dir()))
    if not kept:
        raise InputError(f"--split {split}: none of the protocol's sets has a {split} split under {data_root}")
    return kept


def _evaluate(cfg: EvalConfig, protocol: Protocol, rows: list[TestRow], data_root: Path,
              faces: dict[str, list[Path]], models: list[Upscaler], rank: int, world: int) -> dict | None:
    from . import report

    started_here = False
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            # Only Python objects are exchanged (once, at the end), so gloo serves CPU and GPU runs.
            dist.init_process_group(backend="gloo")
            started_here = True
    try:
        t0 = time.perf_counter()
        records = score_faces(models, rows, faces, rank, world, cfg.batch_size, cfg.chunk_size)
        records = gather_records(records, world)
        elapsed = time.perf_counter() - t0
    finally:
        if started_here:
            import torch.distributed as dist

            dist.destroy_process_group()
    if records is None:
        return None
    results = {
        "protocol": cfg.protocol, "title": protocol.title, "tier": cfg.tier, "split": cfg.split,
        "limit": cfg.limit, "world_size": world, "device": str(models[0].device), "precision": cfg.precision,
        "data_root": str(data_root), "face_counts": {ds: len(f) for ds, f in faces.items()},
        "ffhq_crop": {"box_ltrb_on_1024": list(FFHQ_CROP),
                      "why": "matches UTKFace framing (eyes and eye distance), see protocols.py"},
        "metrics": DEFINITIONS, "rows": [r.as_dict() for r in rows],
        "models": [{"name": m.name, "arch": m.model.arch, "sha256": m.weights_sha256} for m in models],
        "results": aggregate(records, [m.name for m in models], rows),
        "elapsed_s": round(elapsed, 2),
    }
    report.write_results(results, cfg.out)
    if cfg.pictures:
        from . import plots

        plots.write_pictures(results, models, rows, faces, data_root, cfg.out, cfg.chunk_size)
    return results
