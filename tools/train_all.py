"""Train every model of the results (issue 4) on one machine within a wall-clock budget.

All runs train at once (they share the GPU and the CPU cores). A short probe measures
each run's speed under that load; then every tier gets ONE iteration budget (the
slowest run of the tier decides, so comparisons inside a tier are fair), capped by the
tier's own default, and the runs are started again for real. Exported weights, cards
and CSV logs are packed into a few tar files under ``--out``.

    python -m tools.pack_faces packed/
    python -m tools.train_all --data-root packed --budget 480 --out gpu-out

The per-run command lines (what each model card records) are plain ``arasfsr train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

RUNS = {
    "paper": ["A-arasfsr", "A-liif", "P-arasfsr"],
    "cpu": ["A-arasfsr", "A-liif", "A-lte", "A-diinn", "A-arasfsr-L", "A-arasfsr-G", "A-arasfsr-S",
            "B-arasfsr", "B-liif", "B-sparnet", "C-arasfsr", "C-liif", "P-arasfsr"],
}
RUNS["smoke"] = RUNS["cpu"]
TIER_CAP = {"paper": 100_000, "cpu": 5000, "smoke": 40}


def launch(tier: str, name: str, out: Path, args: argparse.Namespace, iterations: int,
           precision: str | None, vals: int) -> subprocess.Popen:
    from arasfsr.cli.train import train_argv

    workers = args.workers_paper if tier == "paper" else args.workers
    sets = [f"train.iterations={iterations}", f"train.val_every={max(1, iterations // vals)}",
            f"train.log_every={max(1, min(20, iterations // 10))}"]
    cmd = [sys.executable, "-m", "arasfsr.cli",
           *train_argv(f"{tier}/{name}", data_root=args.data_root, out=out, accelerator=args.accelerator,
                       num_workers=workers, trainer_precision=precision, overrides=sets)]
    out.mkdir(parents=True, exist_ok=True)
    log = open(out.parent / f"{out.name}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_all(procs: dict, deadline: float) -> dict[str, int]:
    codes = {}
    for key, proc in procs.items():
        try:
            codes[key] = proc.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[key] = proc.wait()
    return codes


def steps_per_s(run: Path) -> float | None:
    rates = []
    for path in run.glob("logs/version_*/metrics.csv"):
        with open(path) as f:
            rates += [float(r["steps_per_s"]) for r in csv.DictReader(f) if r.get("steps_per_s")]
    if not rates:
        return None
    return statistics.median(rates[len(rates) // 2:])


def export_last(run: Path, out: Path | None = None) -> bool:
    """A run stopped by the deadline: export its last checkpoint's weights (to ``out``, by
    default the run's ``model.safetensors``, which marks the run as ended)."""
    last = run / "checkpoints" / "last.safetensors"
    if not last.is_file():
        return False
    import yaml

    from arasfsr.checkpoint import save_checkpoint
    from arasfsr.models import create_model
    from arasfsr.training.checkpoint_io import load_state
    from arasfsr.training.config import model_spec

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    arch, model_args = model_spec(cfg)
    model = create_model(arch, **model_args)
    state = load_state(last)
    weights = state["state_dict"]
    # The EMA where the run keeps one: training exports it, not the raw weights.
    prefix = "ema." if any(k.startswith("ema.") for k in weights) else "model."
    model.load_state_dict({k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)})
    save_checkpoint(model, out or run / "model.safetensors",
                    card={"name": cfg["name"], "tier": cfg["tier"], "protocol": cfg["protocol"],
                          "iterations": state.get("global_step"), "note": "exported from the last "
                          "checkpoint: the run was stopped by the time budget"})
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--budget", type=float, default=480, help="seconds for everything")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "train-all-out")))
    p.add_argument("--runs", type=Path, default=Path("/tmp/train-all"))
    p.add_argument("--tiers", default="paper,cpu")
    p.add_argument("--accelerator", default="cuda")
    p.add_argument("--probe-steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--workers-paper", type=int, default=2)
    p.add_argument("--vals", type=int, default=4, help="validations per run")
    p.add_argument("--safety", type=float, default=0.8)
    p.add_argument("--only", help="comma-separated run names (default: all of each tier)")
    args = p.parse_args()
    start = time.time()
    tiers = args.tiers.split(",")
    if args.only:
        for t in tiers:
            RUNS[t] = [n for n in RUNS[t] if n in args.only.split(",")]
    jobs = [(t, n) for t in tiers for n in RUNS[t]]
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.runs, ignore_errors=True)
    report: dict = {"budget_s": args.budget, "probe": {}, "iterations": {}, "runs": {}}

    # 1. probe: everything at once, a few steps each, to measure speed under the real load.
    procs = {(t, n): launch(t, n, args.runs / "probe" / f"{t}-{n}", args, args.probe_steps, None, 1)
             for t, n in jobs}
    codes = wait_all(procs, start + 0.3 * args.budget)
    fallback = set()
    for (t, n), code in codes.items():
        rate = steps_per_s(args.runs / "probe" / f"{t}-{n}")
        report["probe"][f"{t}/{n}"] = {"rc": code, "steps_per_s": rate}
        if code != 0:
            fallback.add((t, n))  # retried in fp32 below
    probe_s = time.time() - start
    print(f"probe done in {probe_s:.0f} s", json.dumps(report["probe"], indent=1), flush=True)

    # 2. one iteration budget per tier, from its slowest run.
    remaining = args.budget - (time.time() - start) - 45  # start-up, export and packing
    for t in tiers:
        rates = [report["probe"][f"{t}/{n}"]["steps_per_s"] for n in RUNS[t]]
        rates = [r for r in rates if r]
        its = int(min(rates) * remaining * args.safety) // 100 * 100 if rates else 100
        report["iterations"][t] = max(100, min(TIER_CAP[t], its))
    print("iterations per tier:", report["iterations"], flush=True)

    procs = {(t, n): launch(t, n, args.runs / f"{t}-{n}", args, report["iterations"][t],
                            "32-true" if (t, n) in fallback else None, args.vals)
             for t, n in jobs}
    codes = wait_all(procs, start + args.budget - 30)

    # 3. collect: weights + card + CSV log per run, packed into tars under 16 MB each.
    packs: list[list[Path]] = [[]]
    sizes = [0]
    for (t, n), code in codes.items():
        run = args.runs / f"{t}-{n}"
        exported = (run / "model.safetensors").is_file() or export_last(run)
        report["runs"][f"{t}/{n}"] = {"rc": code, "exported": exported, "fp32_fallback": (t, n) in fallback}
        files = [f for f in [run / "model.safetensors", run / "model.json", run / "config.yaml",
                             run.parent / f"{run.name}.log", *run.glob("logs/version_*/metrics.csv")]
                 if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        if sizes[-1] + size > 15_000_000:
            packs.append([])
            sizes.append(0)
        packs[-1].extend(files)
        sizes[-1] += size
    for i, files in enumerate(packs):
        with tarfile.open(args.out / f"runs{i}.tar", "w") as tar:
            for f in files:
                tar.add(f, arcname=str(f.relative_to(args.runs)))
    report["wall_s"] = round(time.time() - start, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["runs"], indent=1), "wall", report["wall_s"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
