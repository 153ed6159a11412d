"""Copy trained runs into the package as named models, with their model cards and logs.

    python -m tools.ship_weights RUNS_DIR      # RUNS_DIR holds <tier>-<config>/ run folders

Paper-tier weights are stored in half precision (they would exceed 15 MB per file in
fp32 otherwise; the measured PSNR cost is below 0.01 dB, see RESULTS.md); the small
cpu-tier weights stay fp32. Each card gains its registry name, a description and how
the run was made; the run's CSV log is copied to ``results/logs/NAME.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from arasfsr.checkpoint import load_checkpoint, save_checkpoint

from tools import ROOT
from tools.weights import weights_file, write_research_manifest
# run folder -> (registry name, what it is)
SHIPPED = {
    "paper-P-arasfsr-ft": ("arasfsr", "the default: ARASFSR (EDSR-baseline) for practical use, faces of 12-96 px, "
                                   "x1-x8, mixed degradations (protocol P, paper tier)"),
    "paper-P-arasfsr": ("arasfsr-p", "ARASFSR, protocol P, paper tier, before fine-tuning "
                                     "(the same budget as arasfsr-a and liif-a)"),
    "paper-A-arasfsr": ("arasfsr-a", "ARASFSR (EDSR-baseline), the paper's scale protocol: LR 64, x1-x2 "
                                     "(protocol A, paper tier)"),
    "paper-A-liif": ("liif-a", "LIIF (EDSR-baseline), protocol A, paper tier"),
    "cpu-A-arasfsr": ("arasfsr-a-cpu", "ARASFSR, protocol A, cpu tier"),
    "cpu-A-liif": ("liif-a-cpu", "LIIF, protocol A, cpu tier"),
    "cpu-A-lte": ("lte-a-cpu", "LTE, protocol A, cpu tier"),
    "cpu-A-diinn": ("diinn-a-cpu", "DIINN, protocol A, cpu tier"),
    "cpu-A-arasfsr-L": ("arasfsr-L-a-cpu", "ARASFSR(-L) ablation, protocol A, cpu tier"),
    "cpu-A-arasfsr-G": ("arasfsr-G-a-cpu", "ARASFSR(-G) ablation, protocol A, cpu tier"),
    "cpu-A-arasfsr-S": ("arasfsr-S-a-cpu", "ARASFSR(-S) ablation, protocol A, cpu tier"),
    "cpu-B-arasfsr": ("arasfsr-b-cpu", "ARASFSR, fixed x8 16->128 (protocol B), cpu tier"),
    "cpu-B-liif": ("liif-b-cpu", "LIIF, protocol B, cpu tier"),
    "cpu-B-sparnet": ("sparnet-b-cpu", "SPARNet (lighter), fixed x8 16->128 (protocol B), cpu tier"),
    "cpu-C-arasfsr": ("arasfsr-c-cpu", "ARASFSR, NN-JPEG inputs, LR 32, x1-x2 (protocol C), cpu tier"),
    "cpu-C-liif": ("liif-c-cpu", "LIIF, protocol C, cpu tier"),
    "cpu-P-arasfsr": ("arasfsr-p-cpu", "ARASFSR, protocol P, cpu tier"),
    "cpu-A-arasfsr-authors": ("arasfsr-authors-a-cpu", "ARASFSR as the authors' released code computes it "
                                                       "(variant: authors), protocol A, cpu tier"),
}
HOW = ("trained with every other shipped model at once on one NVIDIA H200 by "
       "`python -m tools.train_all --data-root packed --budget 470` after "
       "`python -m tools.pack_faces packed --max-mb 32` (5,976 utkface/train faces); "
       "one iteration budget per tier, set by the slowest run of the tier")
# Runs trained elsewhere, later: how each was made instead.
HOW_OF = {
    "cpu-A-arasfsr-authors": "trained on the 2-core development CPU in fp32 with one thread "
                             "(`OMP_NUM_THREADS=1` before the command above; two threads stalled on the "
                             "shared machine), at the same time as its control (the paper's formulation, "
                             "same command with cpu/A-arasfsr) and other jobs, after "
                             "`python -m tools.pack_faces packed --max-mb 32` (the same 5,976 faces as "
                             "arasfsr-a-cpu), at arasfsr-a-cpu's budget: its iterations, batch, queries, seed "
                             "and validation, with the trainer of that time (no weight averaging: "
                             "`--set train.ema_decay=null` on today's) (issue 13)",
}


# The default model was then fine-tuned on the same machine with the device time left:
# `--init` from the paper-P-arasfsr weights, killed by its time limit at step 2,899; the
# weights of its last checkpoint (step 2,000, learning rate still 1e-4) are shipped.
FINETUNE = ("paper-P-arasfsr-ft", "paper-P-arasfsr", {
    "command": "arasfsr train paper/P-arasfsr --init src/arasfsr/weights/arasfsr.safetensors "
               "--data-root packed --num-workers 10 --set train.iterations=4000 "
               "--set train.val_every=1000 --set train.log_every=50   (timeout 178 s)",
    "data_note": "python -m tools.pack_faces packed --max-mb 24 (4,424 of the same faces)",
    "stopped": "by its time limit at step 2899; exported from the step-2000 checkpoint",
})


def finetuned_card(runs: Path) -> dict:
    """The base run's card, updated with the fine-tuning that followed it."""
    ft_dir, base_dir, info = FINETUNE
    card = json.loads((runs / base_dir / "model.json").read_text())
    rows = list(csv.DictReader(open(runs / ft_dir / "logs" / "version_0" / "metrics.csv")))
    val = [(int(r["step"]) + 1, float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    card["init"] = {"run": base_dir, "iterations": card["iterations"], "command": card["command"]}
    card.update(iterations=val[-1][0], iterations_total=card["iterations"] + val[-1][0],
                val_psnr_final=val[-1][1], val_psnr_best=max(v for _, v in val), **info)
    card["data"]["train_images_finetune"] = 4424
    return card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    args = p.parse_args()
    logs = ROOT / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for run, (name, description) in SHIPPED.items():
        src = args.runs / run
        if not src.is_dir():
            print(name, "skipped: no run folder", src)
            continue
        card = (finetuned_card(args.runs) if run == FINETUNE[0]
                else json.loads((src / "model.json").read_text()))
        model = load_checkpoint(src / "model.safetensors")
        half = card["tier"] == "paper"
        card.update(name=name, description=description, run=run, how=HOW_OF.get(run, HOW),
                    weights_dtype="float16" if half else "float32")
        save_checkpoint(model, weights_file(name), card=card, half=half)
        csvs = sorted(src.glob("logs/version_*/metrics.csv"))
        if csvs:
            shutil.copyfile(csvs[-1], logs / f"{name}.csv")
        print(name, weights_file(name).stat().st_size)
    write_research_manifest()


if __name__ == "__main__":
    main()
