"""Measurements behind the fidelity table (docs/fidelity.md, issue 13): what the
differences between the paper, the authors' code and ours change on real faces, for the
shipped models.

    python -m tools.fidelity.measure zsample    --model arasfsr-a --limit 50
    python -m tools.fidelity.measure rounding   --models arasfsr-a liif-a diinn-a-cpu --limit 50
    python -m tools.fidelity.measure diinn-ties --model diinn-a-cpu --split utkface/val --limit 200 --rows 64-96

zsample     PSNR between the output with the frequency latent's mean (ours) and with z
            drawn (the authors' code; seeds 0..N-1 through ``sample_seed``), per face and
            row; prints the minimum (and the largest 8-bit change and Y-PSNR change
            against the ground truth).
rounding    Y-PSNR/SSIM of the same float outputs quantised our way (round) and the
            authors' way (ToPILImage: truncate), mean per model and row.
diinn-ties  DIINN's code reads codes with F.interpolate('nearest-exact'). For the model's
            ``ties="up"`` (our default) and ``ties="even"`` (grid_sample's rounding),
            counts the output rows where it reads another code than nearest-exact, the
            largest output difference, and the Y-PSNR against the ground truth (the
            nearest-exact output comes from the oracle in tools/authors_reference.py).

Faces: ``--split`` (default utkface/test) faces of protocol A's UTKFace rows, evenly
spaced ``--limit``, as ``arasfsr eval`` builds them; ``--ffhq`` adds the FFHQ rows.
CPU, fp32. ``--json FILE`` also writes the numbers, with the command, commit, machine and
date, for ``tools/make_docs.py`` (the committed ones are under ``results/fidelity/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from arasfsr.api import images_to_tensor, load_model
from arasfsr.atomic import atomic_write_text
from arasfsr.data import resolve_data_root
from arasfsr.evaluation.metrics import face_metrics
from arasfsr.protocols import get_protocol, list_faces, load_ground_truth, make_pair

from tools import authors_reference as ref  # the independent oracle
from tools.authors_mapping import diinn_to_official
from tools.provenance import provenance


def rows_and_faces(args) -> list[tuple]:
    """(row, [(name, lr uint8, hr uint8), ...]) for the selected rows."""
    rows = [r for r in get_protocol("A").rows if args.ffhq or r.dataset.startswith("utkface")]
    if args.split:
        rows = [dataclasses.replace(r, dataset=args.split) if r.dataset.startswith("utkface") else r for r in rows]
    if args.rows:
        rows = [r for r in rows if f"{r.lr}-{r.hr}" in args.rows]
    out = []
    for row in rows:
        paths = list_faces(resolve_data_root(args.data), row.dataset, args.limit)
        pairs = [(p.name, *make_pair(load_ground_truth(p, row.dataset), row)) for p in paths]
        out.append((row, pairs))
    return out


def render(model, lr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Float output in [0, 1] (clamped, not quantised), (3, H, W)."""
    with torch.no_grad():
        return model.render(images_to_tensor(lr[None]), size, chunk_size=8192)[0].clamp(0, 1)


def levels(img: torch.Tensor, how: str) -> np.ndarray:
    x = img * 255
    x = x.round() if how == "round" else x  # .byte() truncates, as ToPILImage
    return x.byte().permute(1, 2, 0).numpy()


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def cmd_zsample(args) -> dict:
    model = load_model(args.model, precision="fp32").model
    worst, worst_levels, worst_dpsnr = float("inf"), 0, 0.0
    rows = []
    for row, pairs in rows_and_faces(args):
        row_min, row_levels, row_dpsnr = float("inf"), 0, 0.0
        for name, lr, hr in pairs:
            model.sample = False
            mean = render(model, lr, row.hr_size)
            model.sample = True
            for seed in range(args.seeds):
                model.sample_seed = seed
                drawn = render(model, lr, row.hr_size)
                row_min = min(row_min, psnr01(mean, drawn))
                a, b = levels(mean, "round"), levels(drawn, "round")
                row_levels = max(row_levels, int(np.abs(a.astype(int) - b.astype(int)).max()))
                row_dpsnr = max(row_dpsnr, abs(face_metrics(a, hr)["psnr"] - face_metrics(b, hr)["psnr"]))
        model.sample = False
        worst, worst_levels, worst_dpsnr = min(worst, row_min), max(worst_levels, row_levels), max(worst_dpsnr, row_dpsnr)
        rows.append({"row": row.key, "label": row.label, "faces": len(pairs), "seeds": args.seeds,
                     "min_psnr_mean_vs_drawn_db": row_min, "max_level_change": row_levels,
                     "max_abs_dpsnr_y_vs_truth_db": row_dpsnr})
        print(f"{row.key}: min PSNR(mean z, drawn z) = {row_min:.2f} dB over {len(pairs)} faces x {args.seeds} seeds")
    print(f"{args.model}: min {worst:.2f} dB; largest 8-bit change {worst_levels}; "
          f"largest |dPSNR(Y) vs GT| {worst_dpsnr:.4f} dB")
    return {"model": args.model, "rows": rows}


def cmd_rounding(args) -> dict:
    data = rows_and_faces(args)
    deltas, results = [], []
    for name in args.models:
        model = load_model(name, precision="fp32").model
        for row, pairs in data:
            sums = {"round": np.zeros(2), "trunc": np.zeros(2)}
            for _, lr, hr in pairs:
                sr = render(model, lr, row.hr_size)
                for how in sums:
                    m = face_metrics(levels(sr, how), hr)
                    sums[how] += (m["psnr"], m["ssim"])
            r, t = sums["round"] / len(pairs), sums["trunc"] / len(pairs)
            deltas.append(r[0] - t[0])
            results.append({"model": name, "row": row.key, "label": row.label, "faces": len(pairs),
                            "psnr_round": r[0], "psnr_trunc": t[0], "ssim_round": r[1], "ssim_trunc": t[1]})
            print(f"{name:16s} {row.key:28s} PSNR round {r[0]:.3f} trunc {t[0]:.3f} "
                  f"({r[0] - t[0]:+.3f} dB)  SSIM round {r[1]:.4f} trunc {t[1]:.4f}")
    print(f"PSNR(round) - PSNR(trunc): {min(deltas):+.3f} to {max(deltas):+.3f} dB")
    return {"models": args.models, "results": results}


def cmd_diinn_ties(args) -> dict:
    model = load_model(args.model, precision="fp32").model
    params = diinn_to_official(model.state_dict())
    rows = []
    for row, pairs in rows_and_faces(args):
        h, big_h = row.lr, row.hr
        i = torch.arange(big_h)
        tie = ((2 * i + 1) * h) % (2 * big_h) == 0  # centre on an LR pixel boundary (square faces)
        stats = {t: {"worst": 0.0, "rows": set(), "psnr": []} for t in ("up", "even")}
        exact_psnr = []
        for _, lr, hr in pairs:
            with torch.no_grad():
                feat = model.encoder(images_to_tensor(lr[None]) * 2 - 1)
                exact = (ref.diinn_official(params, feat, row.hr_size)[0] * 0.5 + 0.5).clamp(0, 1)
            exact_psnr.append(face_metrics(levels(exact, "round"), hr)["psnr"])
            for ties, st in stats.items():
                model.ties = ties
                ours = render(model, lr, row.hr_size)
                diff = (ours - exact).abs().amax(dim=0)  # (H, W)
                st["worst"] = max(st["worst"], float(diff.max()))
                # rows read from another code: they differ even away from the tie columns
                st["rows"] |= set((diff[:, ~tie].amax(dim=1) > 1e-4).nonzero().view(-1).tolist())
                st["psnr"].append(face_metrics(levels(ours, "round"), hr)["psnr"])
        print(f"{row.key}: {len(pairs)} faces; centres on an LR boundary: {int(tie.sum())} of {big_h} rows; "
              f"nearest-exact (oracle) mean PSNR(Y) {np.mean(exact_psnr):.3f} dB")
        up = np.array(stats["up"]["psnr"])
        record = {"row": row.key, "label": row.label, "faces": len(pairs), "tie_rows": int(tie.sum()),
                  "hr_rows": big_h, "nearest_exact_psnr": float(np.mean(exact_psnr)), "ties": {}}
        rows.append(record)
        for ties, st in stats.items():
            p = np.array(st["psnr"])
            record["ties"][ties] = {"rows_other_code": len(st["rows"]), "max_abs_diff": st["worst"],
                                    "mean_psnr": float(p.mean()), "mean_minus_up": float(np.mean(p - up)),
                                    "better_than_up": int((p > up).sum()), "worse_than_up": int((p < up).sum())}
            print(f"  ties={ties:4s}: rows read from another code than nearest-exact: {len(st['rows'])}; "
                  f"max |diff| {st['worst']:.2e} (of 1); mean PSNR(Y) {p.mean():.3f} dB; "
                  f"minus ties=up: mean {np.mean(p - up):+.3f}, per face {np.min(p - up):+.3f}..{np.max(p - up):+.3f} dB; "
                  f"better than up on {int((p > up).sum())} faces, worse on {int((p < up).sum())}")
    return {"model": args.model, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("zsample", "rounding", "diinn-ties"):
        p = sub.add_parser(name)
        p.add_argument("--limit", type=int, default=20, help="UTKFace faces per row (evenly spaced)")
        p.add_argument("--split", help="UTKFace folder instead of utkface/test, e.g. utkface/val")
        p.add_argument("--rows", nargs="*", help="LR-HR sizes to keep, e.g. 64-96")
        p.add_argument("--ffhq", action="store_true", help="add protocol A's FFHQ rows")
        p.add_argument("--data", type=Path, help="folder holding utkface/ and ffhq/")
        p.add_argument("--json", type=Path, help="also write the numbers here (with command, commit, machine, date)")
        if name == "rounding":
            p.add_argument("--models", nargs="+", default=["arasfsr-a", "liif-a"])
        else:
            p.add_argument("--model", default="arasfsr-a" if name == "zsample" else "diinn-a-cpu")
        if name == "zsample":
            p.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    made_by = provenance("tools.fidelity.measure")  # before the work: the commit that is measured
    record = {"zsample": cmd_zsample, "rounding": cmd_rounding, "diinn-ties": cmd_diinn_ties}[args.cmd](args)
    if args.json:
        record = {"provenance": made_by, "measure": args.cmd, "split": args.split or "utkface/test",
                  "limit": args.limit, **record}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
