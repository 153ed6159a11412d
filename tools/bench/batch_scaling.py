"""Does a larger batch learn as much per face? Fine-tunes one config at several (batch, rate)
arms for the same number of training faces and scores each on validation faces as it goes.

    python -m tools.bench.batch_scaling --config cpu/A-arasfsr --init weights/research/arasfsr-a-cpu.safetensors \
        --samples 16000 --arms 8:1e-4 32:1e-4 32:2e-4 32:4e-4 --json benchmarks/results/batch-scaling/cpu-A.json

A device session buys samples/s with a larger batch (2.1-3.4x at batch 64 on an H100); that
pays only if the extra faces per step teach the model as much per face. That ratio does not
depend on the hardware, so a CPU can measure it. Every arm uses the device session's recipe
(warm-up, cosine decay to 1 %, EMA), scaled to its batch so that all arms see the same faces'
worth of each: ``--samples / batch`` steps, a warm-up of ``--warmup-samples`` faces, and an
EMA whose horizon covers the same faces (``tools.recipes.scaled_to_batch``, from the
first arm's: decay 0.999).
Validation PSNR (of the EMA weights, ``val.count`` faces) is logged ``--val-points`` times;
with ``--init``, a first row scores the starting weights (one step at a rate of 1e-12).
Arms run ``--jobs`` at a time, ``--threads`` each (speed is not what this measures).
Prints a Markdown table; ``--json OUT``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from arasfsr.cli.train import train_argv
from arasfsr.data import resolve_data_root
from arasfsr.training import load_config

from tools.bench.train_speed import failure, metrics_rows, thread_env
from tools.device_session import SESSION_SCHEDULE
from tools.provenance import write_result
from tools.recipes import scaled_to_batch

RECIPE = [*SESSION_SCHEDULE, "train.keep_checkpoints=latest"]


def parse_arm(text: str) -> tuple[int, float, list[str]]:
    """``BATCH:LR`` or ``BATCH:LR:KEY=VALUE,KEY=VALUE`` (an arm's own overrides, e.g. its precision)."""
    batch, lr, *rest = text.split(":", 2)
    return int(batch), float(lr), [s for s in (rest[0].split(",") if rest else []) if s]


def arm_sets(batch: int, lr: float, base: dict, args: argparse.Namespace, own: list[str] = ()) -> list[str]:
    """An arm's overrides, scaled from ``base`` (the first arm's resolved train section)."""
    steps = args.samples // batch
    return [*RECIPE, *scaled_to_batch(base, batch / base["batch_size"], lr=lr), f"train.iterations={steps}",
            f"train.val_every={max(1, steps // args.val_points)}", f"val.count={args.val_count}",
            f"train.log_every={max(1, steps // 40)}", f"train.seed={args.seed}", *args.set, *own]


def run_arm(batch: int, lr: float, sets: list[str], args: argparse.Namespace, out: Path,
            own: list[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "arasfsr.cli", *train_argv(args.config, data_root=args.data_root, out=out,
                                                           init=args.init, accelerator="cpu",
                                                           num_workers=args.num_workers, overrides=sets)]
    started = time.time()
    r = subprocess.run(cmd, env=thread_env(args.threads), capture_output=True, text=True)
    arm = {"batch_size": batch, "lr": lr, "own": list(own), "sets": sets, "wall_s": round(time.time() - started, 1)}
    if r.returncode != 0:
        return {**arm, "error": failure(r)}
    rows = metrics_rows(out)
    val = [(int(x["step"]) + 1, float(x["val_psnr"])) for x in rows if x.get("val_psnr")]
    losses = [float(x["loss"]) for x in rows if x.get("loss")]
    return {**arm, "val_psnr": [{"step": s, "samples": s * batch, "psnr": round(p, 4)} for s, p in val],
            "final_loss_mean": round(sum(losses[-10:]) / len(losses[-10:]), 5) if losses else None,
            "loss_curve": [[int(x["step"]) + 1, round(float(x["loss"]), 5)] for x in rows if x.get("loss")]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cpu/A-arasfsr")
    p.add_argument("--init", type=Path, default=None, help="weights to fine-tune (default: from scratch)")
    p.add_argument("--arms", nargs="+", default=["8:1e-4", "32:1e-4", "32:2e-4", "32:4e-4"],
                   metavar="BATCH:LR[:KEY=VALUE,...]",
                   help="the first arm is the reference whose EMA decay (0.999) the others scale from; "
                        "an arm's own overrides follow a second colon")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every arm")
    p.add_argument("--keep", type=Path, default=None, help="keep each arm's run folder here (default: a temporary one)")
    p.add_argument("--samples", type=int, default=16000, help="training faces every arm sees")
    p.add_argument("--warmup-samples", type=int, default=800, help="faces of linear warm-up (100 steps at batch 8)")
    p.add_argument("--val-points", type=int, default=4)
    p.add_argument("--val-count", type=int, default=200, help="utkface/val faces scored (it has 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="arms run at once")
    p.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each arm")
    p.add_argument("--num-workers", type=int, default=None, help="loader processes of each arm (default: the tier's)")
    p.add_argument("--data-root", type=Path, default=resolve_data_root())
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    arms = [parse_arm(a) for a in args.arms]
    base_batch = arms[0][0]
    base = load_config(args.config, [*RECIPE, f"train.batch_size={base_batch}",
                                     f"train.warmup={max(1, round(args.warmup_samples / base_batch))}"])["train"]
    with tempfile.TemporaryDirectory(prefix="batch-scaling-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        keep = args.keep or Path(tmp)
        futures = []
        if args.init:  # the weights before any fine-tuning, scored the same way
            start = [*arm_sets(base_batch, 1e-12, base, args), "train.iterations=1", "train.val_every=1"]
            futures.append(pool.submit(run_arm, base_batch, 0.0, start, args, keep / "start"))
        futures += [pool.submit(run_arm, b, lr, arm_sets(b, lr, base, args, own), args,
                                keep / f"arm{i}-b{b}-lr{lr:g}", own)
                    for i, (b, lr, own) in enumerate(arms)]
        results = []
        for f in futures:
            results.append(f.result())
            print(json.dumps({k: v for k, v in results[-1].items() if k != "sets"}), file=sys.stderr, flush=True)

    points = max(len(r.get("val_psnr", [])) for r in results)
    print(f"\n{args.config}, {args.samples} faces per arm, init {args.init or 'none'}, seed {args.seed}\n")
    print("| batch | lr | " + " | ".join(f"val PSNR {i + 1}/{points}" for i in range(points)) + " | final loss |")
    print("|---:|---:|" + "---:|" * points + "---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['batch_size']} | {r['lr']:g} | error: {r['error']} |")
            continue
        cells = [f"{v['psnr']:.3f}" for v in r["val_psnr"]] + [""] * (points - len(r["val_psnr"]))
        own = " ".join(r.get("own", []))
        name = f"{r['batch_size']} | start (the init weights)" if r["lr"] == 0 else f"{r['batch_size']} | {r['lr']:g} {own}"
        print(f"| {name} | " + " | ".join(cells) + f" | {r['final_loss_mean'] or ''} |")
    if args.json:
        write_result(args.json, {"config": args.config, "init": str(args.init) if args.init else None,
                                 "samples": args.samples, "seed": args.seed, "arms": results}, __spec__.name, argv)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
