"""Training speed: today's workers path against the device path, per config, in fresh processes.

    python -m tools.bench.train_speed --configs smoke/A-arasfsr,cpu/A-arasfsr --iterations 60
    python -m tools.bench.train_speed --busy-core ...       # with one core kept busy meanwhile
    python -m tools.bench.train_speed --device cuda --configs paper/A-arasfsr --iterations 1000 \
        --variants today=workers+train.query=gathered device=device+train.fused_adam=true+train.channels_last=true

A variant is ``NAME=PIPELINE[+KEY=VALUE...]`` (config overrides joined by ``+``); the
default compares ``today=workers+train.query=gathered`` (the trainer issue 9 started from:
each query gathers its unfolded code) with ``device=device``. Each (config, variant) is one
``arasfsr train`` run of ``--iterations`` steps (``--iterations-of today=300`` shortens
one variant) with ``train.profile`` on and validation only at the end. it/s is the
median of the logged ``steps_per_s`` over the second half of the run, samples/s = it/s x
batch; the profile splits a step into data wait, forward, backward and optimiser (on CUDA
from CUDA events, without synchronising; on CUDA ``nvidia-smi`` also samples the GPU
utilisation). The loss column is the mean training loss over the second half of the
shortest run's steps, the same steps for every variant of a config (same seed, same
batches: a check that a faster path learns alike). Prints a Markdown table; ``--json OUT``.
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
import tempfile
import time
from pathlib import Path

from arasfsr.cli.train import train_argv
from arasfsr.data import resolve_data_root

from tools import ROOT
from tools.provenance import write_result


def thread_env(threads: int | None, checkout: Path = ROOT) -> dict[str, str]:
    """The environment of a run: ``checkout``'s package (another commit's, for a baseline)."""
    env = dict(os.environ, PYTHONPATH=str(Path(checkout) / "src"), PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _gpu_sampler() -> subprocess.Popen | None:
    if not shutil.which("nvidia-smi"):
        return None
    return subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                             "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _gpu_util(proc: subprocess.Popen | None) -> float | None:
    if proc is None:
        return None
    proc.terminate()
    out = proc.communicate()[0]
    values = [float(v) for v in out.split() if v.replace(".", "", 1).isdigit()]
    mid = values[len(values) // 4: max(len(values) // 4 + 1, 3 * len(values) // 4)]  # the steady middle
    return round(statistics.mean(mid), 1) if mid else None


def failure(r: subprocess.CompletedProcess) -> str:
    """The one-line reason a training run failed: its last stderr line."""
    return r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"


def metrics_rows(out: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV log (``steps_per_s``, ``loss``, ``val_psnr``...)."""
    with open(sorted(out.glob("logs/version_*/metrics.csv"))[-1]) as fh:
        return list(csv.DictReader(fh))


def run_once(config: str, overrides: list[str], iterations: int, args: argparse.Namespace, out: Path,
             checkout: Path = ROOT) -> dict:
    sets = [f"train.iterations={iterations}", f"train.val_every={iterations}", "train.profile=true",
            f"train.log_every={max(1, min(20, iterations // 10))}", "train.keep_checkpoints=latest", *overrides]
    cmd = [sys.executable, "-m", "arasfsr.cli", *train_argv(config, data_root=args.data_root, out=out,
                                                           accelerator=args.device, num_workers=args.num_workers,
                                                           overrides=sets)]
    gpu = _gpu_sampler() if args.device == "cuda" else None
    started = time.time()
    r = subprocess.run(cmd, env=thread_env(args.threads, checkout), capture_output=True, text=True)
    wall = time.time() - started
    util = _gpu_util(gpu)
    if r.returncode != 0:
        return {"error": failure(r)}
    card = json.loads((out / "model.json").read_text())
    rows = metrics_rows(out)
    rates = [float(x["steps_per_s"]) for x in rows if x.get("steps_per_s")]
    return {"wall_s": round(wall, 1), "batch_size": card["train"]["batch_size"], "iterations": iterations,
            "it_per_s": round(statistics.median(rates[len(rates) // 2:]), 3) if rates else None,
            "losses": [(int(x["step"]), float(x["loss"])) for x in rows if x.get("loss")],
            "gpu_util_percent": util, "machine": card.get("machine"), "precision": card.get("precision"),
            "profile": card.get("profile")}


def median_run(reps: list[dict]) -> dict:
    """The repetition with the median it/s, with every repetition's it/s beside it."""
    ok = [r for r in reps if r.get("it_per_s")]
    if not ok:
        return reps[0]
    chosen = sorted(ok, key=lambda r: r["it_per_s"])[(len(ok) - 1) // 2]
    return {**chosen, "it_per_s_runs": [r.get("it_per_s") for r in reps]}


def loss_window(results: list[dict]) -> None:
    """Mean and spread of each run's loss over the second half of the shortest run of its config."""
    for config in {r["config"] for r in results}:
        runs = [r for r in results if r["config"] == config and "losses" in r]
        if not runs:
            continue
        last = min(r["iterations"] for r in runs)
        for r in runs:
            window = [v for step, v in r["losses"] if last // 2 <= step < last]
            if window:
                r["loss_window"] = [last // 2, last]
                r["loss_mean"] = round(statistics.mean(window), 5)
                r["loss_sd"] = round(statistics.stdev(window), 5) if len(window) > 1 else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="smoke/A-arasfsr,smoke/P-arasfsr")
    p.add_argument("--variants", nargs="+", default=["today=workers+train.query=gathered", "device=device"],
                   metavar="NAME=PIPELINE[+KEY=VALUE...]")
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--iterations-of", nargs="*", default=[], metavar="NAME=N", help="another length for a variant")
    p.add_argument("--checkout-of", nargs="*", default=[], metavar="NAME=DIR",
                   help="run a variant with the package of another checkout (git worktree add DIR COMMIT): "
                        "today's trainer as it was")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the variants this many times, interleaved (the median is reported)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--data-root", type=Path, default=resolve_data_root(),
                   help="the folder holding utkface/ (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    p.add_argument("--num-workers", type=int, default=None, help="loader processes (default: the tier's)")
    p.add_argument("--threads", type=int, default=None, help="OMP/MKL threads of each run")
    p.add_argument("--busy-core", action="store_true", help="keep one core busy while measuring")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    lengths = {k: int(v) for k, v in (item.split("=", 1) for item in args.iterations_of)}
    checkouts = {k: Path(v) for k, v in (item.split("=", 1) for item in args.checkout_of)}

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy_core else None
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
            for config in args.configs.split(","):
                runs: dict[str, list[dict]] = {}
                for rep in range(args.repeat):  # interleaved: a slow spell of the machine hits every variant
                    for variant in args.variants:
                        name, _, spec = variant.partition("=")
                        pipeline, *extra = spec.split("+")
                        overrides = [f"data.pipeline={pipeline}", *extra]
                        out = Path(tmp) / f"{config.replace('/', '-')}-{name}-{rep}"
                        res = run_once(config, overrides, lengths.get(name, args.iterations), args, out,
                                       checkouts.get(name, ROOT))
                        runs.setdefault(name, []).append({"config": config, "variant": name, "overrides": overrides,
                                                          **({"checkout": str(checkouts[name])} if name in checkouts
                                                             else {}), **res})
                        short = {k: v for k, v in runs[name][-1].items() if k != "losses"}
                        print(json.dumps(short), file=sys.stderr, flush=True)
                results += [median_run(reps) for reps in runs.values()]
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    loss_window(results)
    load = os.getloadavg()[0]
    print(f"\n{args.device}, busy core: {args.busy_core}, load average at the end {load:.1f}\n")
    print("| config | variant | steps | it/s | samples/s | speed-up | data ms | fwd ms | bwd ms | opt ms | "
          "device prep ms | GPU % | loss (window) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base: dict[str, float] = {}
    for r in results:
        if "error" in r:
            print(f"| {r['config']} | {r['variant']} | error: {r['error']} |")
            continue
        sps = r["it_per_s"] * r["batch_size"] if r["it_per_s"] else None
        base.setdefault(r["config"], sps or 0)
        prof = r.get("profile") or {}
        ms = prof.get("ms_per_step", {})
        ratio = f"{sps / base[r['config']]:.2f}" if sps and base[r["config"]] else ""
        loss = f"{r['loss_mean']} ± {r['loss_sd']} ({r['loss_window'][0]}-{r['loss_window'][1]})" \
            if "loss_mean" in r else ""
        print(f"| {r['config']} | {r['variant']} | {r['iterations']} | {r['it_per_s']} | {sps and round(sps, 1)} | "
              f"{ratio} | {ms.get('data', '')} | {ms.get('forward', '')} | {ms.get('backward', '')} | "
              f"{ms.get('optimizer', '')} | {prof.get('device_prep_ms_per_step', '')} | "
              f"{r.get('gpu_util_percent') or ''} | {loss} |")
    if args.json:
        write_result(args.json, {"device": args.device, "busy_core": args.busy_core, "load_end": load,
                                 "results": results}, __spec__.name, argv)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
