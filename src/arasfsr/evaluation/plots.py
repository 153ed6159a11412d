"""Pictures: PSNR versus scale, and visual comparison grids like the paper's figures.

A grid has one column per image (LR, bicubic, each model, HR) and, under each face, the
eye region of every column enlarged (the box drawn on the full images).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from ..api import Upscaler
from ..errors import InputError
from ..imageio import image_files, read_image, write_image
from ..protocols import TestRow, crop_ffhq, load_ground_truth, make_pair
from .metrics import face_metrics

# Both eyes on a UTKFace-framed face (eyes at about 30 % and 69 % across, 28 % down).
EYE_BOX = (0.18, 0.16, 0.82, 0.42)  # (left, top, right, bottom) as fractions of the image
GRID_FACES = 3
MARKERS = "os^Dvp*"

Tile = tuple[str, np.ndarray, str]  # (column title, HxWx3 uint8, caption)


def _save(fig: Figure, path: Path, overwrite: bool = True) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    buf.seek(0)
    with Image.open(buf) as img:
        return write_image(img.convert("RGB"), path, overwrite=overwrite)


def psnr_vs_scale(results: dict, path: Path) -> Path:
    """One panel per (dataset, degradation); a line per model and LR size."""
    panels: dict[tuple[str, str], list[dict]] = {}
    for r in results["results"]:
        panels.setdefault((r["dataset"], r["degradation"]), []).append(r)
    models = [m["name"] for m in results["models"]]
    fig = Figure(figsize=(5.2 * len(panels), 4.0), dpi=110)
    for i, ((dataset, degradation), entries) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        series: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for r in entries:
            series.setdefault((r["model"], r["lr_size"][0]), []).append((r["scale"], r["psnr"]))
        lrs = sorted({lr for _, lr in series})
        for (model, lr), points in series.items():
            xs, ys = zip(*sorted(points))
            label = model if len(lrs) == 1 else f"{model} (LR {lr})"
            # colour = model, marker = LR size, so a model reads as one colour across panels
            ax.plot(xs, ys, color=f"C{models.index(model) % 10}", marker=MARKERS[lrs.index(lr) % len(MARKERS)],
                    linestyle="--" if model == "bicubic" else "-", label=label)
        scales = sorted({r["scale"] for r in entries})
        ax.set_xscale("log")
        ax.set_xticks(scales)
        ax.set_xticklabels([f"x{s:g}" for s in scales])
        ax.minorticks_off()
        ax.set_xlabel("up-sampling scale (HR / LR)")
        ax.set_ylabel("PSNR on Y (dB)")
        ax.set_title(f"{dataset}, {degradation} LR")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def comparison_grid(faces: list[tuple[str, list[Tile]]], path: Path, title: str,
                    zoom: tuple[float, float, float, float] = EYE_BOX, overwrite: bool = True) -> Path:
    """Faces as rows of tiles (all one size), each row followed by its zoomed crops."""
    if not faces:
        raise InputError("no faces to show")
    ncols = len(faces[0][1])
    l, t, r, b = zoom
    crop_ratio = (b - t) / (r - l)
    heights = [h for _ in faces for h in (1.0, crop_ratio)]
    fig = Figure(figsize=(1.9 * ncols, 1.9 * sum(heights) + 0.6), dpi=120)
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights, hspace=0.28, wspace=0.04)
    for f, (name, tiles) in enumerate(faces):
        for c, (label, img, caption) in enumerate(tiles):
            h, w = img.shape[:2]
            box = (round(l * w), round(t * h), round(r * w), round(b * h))
            ax = fig.add_subplot(grid[2 * f, c])
            ax.imshow(img, interpolation="nearest")
            ax.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2] - box[0], box[3] - box[1],
                                   fill=False, edgecolor="yellow", linewidth=0.8))
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_title(label, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=6)
            zax = fig.add_subplot(grid[2 * f + 1, c])
            zax.imshow(img[box[1]:box[3], box[0]:box[2]], interpolation="nearest", aspect="auto")
            zax.set_xticks([])
            zax.set_yticks([])
            if caption:
                zax.set_xlabel(caption, fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path, overwrite)


def _lr_tile(lr: np.ndarray, hr_size: tuple[int, int], degradation: str) -> Tile:
    big = np.asarray(Image.fromarray(lr).resize(hr_size, Image.NEAREST))
    return (f"LR {lr.shape[1]}x{lr.shape[0]} ({degradation})", big, "shown enlarged (nearest)")


def face_tiles(models: list[Upscaler], lr: np.ndarray, out_size: tuple[int, int], degradation: str,
               reference: np.ndarray, reference_label: str, score: bool,
               chunk_size: int | None = None) -> list[Tile]:
    """LR, every model's SR (with PSNR/SSIM against ``reference`` if ``score``), reference."""
    w, h = out_size
    tiles = [_lr_tile(lr, out_size, degradation)]
    for up in models:
        sr = up.upscale_batch(lr[None], size=(w, h), chunk_size=chunk_size)[0]
        caption = ""
        if score:
            m = face_metrics(sr, reference)
            caption = f"{m['psnr']:.2f} dB / {m['ssim']:.4f}"
        tiles.append((up.name, sr, caption))
    tiles.append((reference_label, reference, "PSNR (Y) / SSIM" if score else ""))
    return tiles


def grid_row(rows: tuple[TestRow, ...]) -> TestRow:
    """The row a protocol's grid shows: the largest scale on UTKFace (then the largest HR)."""
    utk = [r for r in rows if r.dataset.startswith("utkface")] or list(rows)
    return max(utk, key=lambda r: (r.scale, r.hr))


def faces_grid(models: list[Upscaler], faces: list[tuple[str, Image.Image]], row: TestRow, path: Path,
               title: str, ground_truth: bool = True, overwrite: bool = True,
               chunk_size: int | None = None) -> Path:
    """A grid of ``(name, face)`` pairs made into ``row``'s LR and HR.

    With ``ground_truth`` the resized face is the HR and PSNR/SSIM are shown; without (real
    low-quality faces) it is only a reference, labelled so, and nothing is scored.
    """
    ref_label = f"HR {row.hr}x{row.hr}" if ground_truth else "original, resized\n(reference, not ground truth)"
    tiles = []
    for name, gt in faces:
        lr, ref = make_pair(gt, row)
        tiles.append((name, face_tiles(models, lr, row.hr_size, row.degradation, ref, ref_label,
                                       ground_truth, chunk_size)))
    return comparison_grid(tiles, path, title, overwrite=overwrite)


def write_pictures(results: dict, models: list[Upscaler], rows: tuple[TestRow, ...],
                   faces: dict[str, list[Path]], data_root: Path, out: Path,
                   chunk_size: int | None = None) -> list[Path]:
    """psnr_vs_scale.png, grid_test.png and (when data has realworld/) grid_realworld.png."""
    written = [psnr_vs_scale(results, out / "psnr_vs_scale.png")]
    row = grid_row(rows)
    files = faces[row.dataset]
    picks = [files[i] for i in sorted({i * len(files) // GRID_FACES for i in range(GRID_FACES)})]
    test = [(p.stem, load_ground_truth(p, row.dataset)) for p in picks]
    written.append(faces_grid(models, test, row, out / "grid_test.png",
                              f"{row.dataset}, {row.degradation} LR, {row.label}", True, True, chunk_size))
    real = Path(data_root) / "realworld"
    real_files = image_files(real)[:GRID_FACES] if real.is_dir() else []
    if real_files:
        # FFHQ-aligned real faces, cropped to UTKFace framing and shrunk to the row's LR size.
        shrink = TestRow("realworld", row.lr, row.hr, "bicubic")
        real_faces = [(p.stem, crop_ffhq(read_image(p)[0])) for p in real_files]
        written.append(faces_grid(models, real_faces, shrink, out / "grid_realworld.png",
                                  f"realworld/ faces shrunk to {row.lr}x{row.lr} (bicubic), "
                                  f"super-resolved to {row.hr}x{row.hr}; no ground truth",
                                  False, True, chunk_size))
    return written


def compare(models: list[Upscaler], paths: list[Path], out: Path, lr: int, hr: int,
            degradation: str = "bicubic", ffhq_framing: bool = False, ground_truth: bool = True,
            overwrite: bool = False, chunk_size: int | None = None) -> Path:
    """The comparison grid for any face images (``arasfsr compare``)."""
    row = TestRow("faces", lr, hr, degradation)
    faces = []
    for p in paths:
        img, _ = read_image(p)
        faces.append((p.stem, crop_ffhq(img) if ffhq_framing else img))
    what = "ground truth" if ground_truth else "reference only, no ground truth"
    return faces_grid(models, faces, row, out, f"{degradation} LR, {row.label} ({what})",
                      ground_truth, overwrite, chunk_size)
