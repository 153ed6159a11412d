"""One device call that continues training the shipped models, evaluates them on the full
test sets and brings them back; and, here afterwards, ships the ones that improved.

On the lent machine (one call from the repository root; ``$OUT`` is where results go;
``PYTHONPATH=src`` where the package is not installed):

    PYTHONPATH=src python -m tools.device_session --budget-s 480 --models arasfsr,arasfsr-a,liif-a
    PYTHONPATH=src python -m tools.device_session --benchmark   # today's trainer vs the device path

Here, after the call (the files came back under FILES_AT):

    python -m tools.device_session --ship FILES_AT   # weights, cards, eval results
    python -m tools.make_results                     # then regenerate RESULTS.md

A session:

1. unpacks the data shards that consecutive calls carried (``.devdata/call-*/*.tar``, made by
   ``tools/pack_faces.py --device-calls .devdata``) into ``.devdata/root``;
2. resumes each listed model from the state that ships: its weights
   ``NAME.safetensors`` in the package's ``weights/`` or the repository's ``weights/research/``
   (the EMA weights of its last run) and card. The
   optimiser state is not kept: Adam's moments for the three models would take ~60 MB,
   more than a call's working tree leaves free, so each session starts them afresh under a
   100-step learning-rate warm-up (the EMA restarts from the shipped weights);
3. trains the models on the device path, each run fitted to its time slice
   (``train.time_budget_s``) and ending with its learning-rate decay (cosine down to 1 % of
   the rate): on CUDA all at once, side by side on the one GPU (``--parallel``: a step of
   these models is launch-bound, so the GPU has room for several), each for the whole
   budget less the evaluation reserve; else (``--no-parallel``) one after the other,
   ``--budget-s`` split by ``--shares`` (priority order; what a model leaves unspent goes
   to the next);
4. evaluates each trained model against the shipped one and bicubic with ``arasfsr eval`` on
   every row of its protocol over the full test sets (all 1,000 utkface/test faces, all
   ffhq/test faces), in processes on the device that start as each run ends;
5. writes ``$OUT/NAME.tar`` per model (weights, fp16 for the paper tier as shipped; card;
   eval results; training log and profile) and ``$OUT/session.json`` + ``session.log``:
   at most 8 files of at most 16 MiB. Cards accumulate iterations, samples and device
   seconds across sessions (``totals``) and list every session (``sessions``).

A call lasts at most 10 minutes but a lease 15, so a session can span two calls on the warm
machine: ``--no-eval --stage .devdata/stage`` trains for the whole first call (its weights
also come back, unevaluated, as a safety net), and ``--eval-stage .devdata/stage`` in the
next call evaluates them against the shipped ones and brings them back for ``--ship``.

``--tier smoke --weights-dir DIR --eval-limit N`` runs the same steps on a CPU in about a
minute (the test suite does); ``--dry`` prints the plan only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arasfsr.checkpoint import load_checkpoint, read_card, read_header, save_checkpoint
from arasfsr.cli.train import train_argv
from arasfsr.data import resolve_data_root

from tools import ROOT
from tools.weights import weights_file, write_research_manifest

MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20  # what a device call can bring back
SESSION_SCHEDULE = ["train.lr_schedule=cosine", "train.lr_decay_at=0.0", "train.lr_gamma=0.01"]  # to 1 % by the end
SESSION_SETS = [  # every session run; --set adds to (and overrides) these
    "data.pipeline=device", "train.iterations=100000000", "train.val_every=100000000",
    "train.warmup=100", *SESSION_SCHEDULE,
    "train.fused_adam=true", "train.profile=true", "train.log_every=50", "train.keep_checkpoints=latest",
]


class Log:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, *parts: Any) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as fh:
                fh.write(line + "\n")


# -- data -------------------------------------------------------------------------------------
def unpack_shards(devdata: Path, log: Log) -> Path | None:
    """Unpack every ``devdata/call-*/*.tar`` into ``devdata/root`` (files already there are kept)."""
    tars = sorted(devdata.glob("call-*/*.tar"))
    if not tars:
        return None
    root = devdata / "root"
    counts: dict[str, int] = {}
    for tar in tars:
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                target = root / member.name
                if not member.isfile() or ".." in Path(member.name).parts or target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    for split in ("utkface/train", "utkface/val", "utkface/test", "ffhq/test"):
        folder = root / split
        counts[split] = len(list(folder.iterdir())) if folder.is_dir() else 0
    log("data:", root, counts, f"from {len(tars)} shards")
    return root


# -- the plan ---------------------------------------------------------------------------------
def config_for(card: dict[str, Any], tier: str | None) -> str:
    """The config that trained a shipped model (``tier/protocol-model``), at ``tier`` if given."""
    model = str(card["model"])
    model = model[2:] if model.startswith("e-") else model
    return f"{tier or card['tier']}/{card['protocol']}-{model}"


def resumable(weights: Path, config: str) -> bool:
    """The check ``train --init`` makes: the same architecture and (defaults filled in) config."""
    from arasfsr.models import create_model
    from arasfsr.training import load_config
    from arasfsr.training.config import model_spec

    arch, args = model_spec(load_config(config))
    return read_header(weights).arch == arch and load_checkpoint(weights).config == create_model(arch, **args).config


def plan_models(names: list[str], shares: list[float], weights_dir: Path | None, tier: str | None) -> list[dict]:
    plans = []
    for name, share in zip(names, shares):
        weights = weights_file(name, weights_dir)
        if not weights.is_file():
            raise SystemExit(f"device_session: {weights}: no such shipped model")
        card = read_card(weights)
        config = config_for(card, tier)
        plans.append({"name": name, "share": share, "weights": weights, "card": card, "config": config,
                      "protocol": card["protocol"], "tier": tier or card["tier"],
                      "init": weights if resumable(weights, config) else None})
    return plans


# -- evaluation -------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process this script starts: this checkout's package first."""
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), **extra)


def launch_eval(protocol: str, models: list[Path], out: Path, data_root: Path, device: str, ranks: int,
                limit: int | None, tier: str, log_path: Path) -> subprocess.Popen:
    args = ["eval", "--protocol", protocol, "--model", *map(str, models), "--out", str(out), "--data", str(data_root),
            "--device", device, "--no-pictures", "--tier", tier, "--overwrite"]
    if limit:
        args += ["--limit", str(limit)]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
               "-m", "arasfsr.cli", *args]
    else:
        cmd = [sys.executable, "-m", "arasfsr.cli", *args]
    env = child_env(OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def compare(results_json: Path, shipped: str, new: str) -> dict[str, Any]:
    """Per-row PSNR of the shipped and the new weights (and bicubic); ``improved`` when the
    new weights' mean PSNR over the protocol's rows is higher."""
    res = json.loads(results_json.read_text())
    by = {(r["model"], r["row"]): r for r in res["results"]}
    rows = []
    for row in res["rows"]:
        key = row["key"]
        cells = {m: by.get((m, key)) for m in ("bicubic", shipped, new)}
        if any(c is None for c in cells.values()):
            continue
        rows.append({"row": key, "faces": cells[new]["count"], "bicubic": round(cells["bicubic"]["psnr"], 3),
                     "shipped": round(cells[shipped]["psnr"], 3), "new": round(cells[new]["psnr"], 3),
                     "delta": round(cells[new]["psnr"] - cells[shipped]["psnr"], 3),
                     "margin_new": round(cells[new]["psnr"] - cells["bicubic"]["psnr"], 3),
                     "margin_shipped": round(cells[shipped]["psnr"] - cells["bicubic"]["psnr"], 3)})
    mean = lambda k: round(sum(r[k] for r in rows) / len(rows), 3) if rows else None  # noqa: E731
    return {"rows": rows, "mean_shipped": mean("shipped"), "mean_new": mean("new"), "mean_delta": mean("delta"),
            "improved": bool(rows) and mean("delta") > 0, "face_counts": res.get("face_counts")}


# -- cards and packing ------------------------------------------------------------------------
def run_logs(run_out: Path) -> list[Path]:
    """The training log of a run folder (its last Lightning version)."""
    return sorted(run_out.glob("logs/version_*/metrics.csv"))[-1:]


def prior_device_seconds(card: dict[str, Any]) -> float:
    totals = card.get("totals") or {}
    if "device_seconds" in totals:
        return float(totals["device_seconds"])
    # Cards from before totals: only the last run's wall time is known, if it ran on an accelerator.
    return float(card.get("wall_time_s") or 0.0) if "NVIDIA" in str(card.get("machine", "")) else 0.0


def by_machine(shipped: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The shipped weights' training per machine: iterations, samples and seconds (accelerator
    or CPU). Cards from before this table: from their sessions, the rest under "earlier runs"."""
    totals = shipped.get("totals") or {}
    if "by_machine" in totals:
        return {m: dict(v) for m, v in totals["by_machine"].items()}
    table: dict[str, dict[str, float]] = {}
    for s in shipped.get("sessions", []):
        add_to_machine(table, s)
    earlier = {k: int(totals.get(k, 0)) - sum(int(v[k]) for v in table.values()) for k in ("iterations", "samples")}
    if earlier["iterations"] > 0:
        table["earlier runs"] = {**earlier, "seconds": round(float(totals.get("train_seconds", 0.0))
                                                             - sum(v["seconds"] for v in table.values()), 1)}
    return table


def add_to_machine(table: dict[str, dict[str, float]], record: dict[str, Any]) -> None:
    row = table.setdefault(str(record["machine"]), {"iterations": 0, "samples": 0, "seconds": 0.0})
    row["iterations"] += int(record["iterations"])
    row["samples"] += int(record["samples"])
    row["seconds"] = round(row["seconds"] + float(record.get("device_seconds", record.get("cpu_seconds", 0.0))), 1)


def session_card(run_card: dict[str, Any], shipped: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The card of weights a session improved: the run's, with the shipped card's names, and
    totals that accumulate accelerator seconds, CPU seconds and the work per machine."""
    card = dict(run_card)
    for key in ("name", "description", "run", "how", "data_note"):
        if key in shipped:
            card[key] = shipped[key]
    prior = shipped.get("totals") or {}
    machines = by_machine(shipped)
    add_to_machine(machines, record)
    card["totals"] = {**run_card.get("totals", {}),
                      "device_seconds": round(prior_device_seconds(shipped) + record.get("device_seconds", 0.0), 1),
                      "cpu_seconds": round(float(prior.get("cpu_seconds", 0.0)) + record.get("cpu_seconds", 0.0), 1),
                      "by_machine": machines}
    card["sessions"] = list(shipped.get("sessions", [])) + [record]
    return card


def pack(out: Path, bundles: dict[str, list[tuple[Path, str]]], log: Log) -> list[dict]:
    """One uncompressed tar per model in ``out``; checks the device tool's return limits."""
    written = []
    for name, files in bundles.items():
        path = out / f"{name}.tar"
        with tarfile.open(path, "w") as tar:
            for src, arcname in files:
                if src.is_file():
                    tar.add(src, arcname=arcname)
        size = path.stat().st_size
        written.append({"file": path.name, "bytes": size, "fits": size <= MAX_FILE_BYTES})
        log("packed", path.name, f"{size / 2**20:.1f} MiB")
    return written


# -- the session ------------------------------------------------------------------------------
def session(args: argparse.Namespace) -> int:
    t0 = time.time()
    out = Path(args.out or os.environ.get("OUT") or "session-out")
    if not args.dry:  # the plan alone writes nothing
        out.mkdir(parents=True, exist_ok=True)
    log = Log(None if args.dry else out / "session.log")
    names = [n for n in args.models.split(",") if n]
    if len(names) > MAX_FILES - 2:
        raise SystemExit(f"device_session: at most {MAX_FILES - 2} models per session (the return limit)")
    shares = [float(s) for s in args.shares.split(",")] if args.shares else [2.0] + [1.0] * (len(names) - 1)
    shares = (shares + [1.0] * len(names))[:len(names)]
    plans = plan_models(names, shares, args.weights_dir, args.tier)
    data_root = (unpack_shards(Path(args.devdata), log) if not args.dry else None) or Path(args.data_root or resolve_data_root())
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    eval_ranks = args.eval_ranks or max(1, min(8, (os.cpu_count() or 2) // 2 - 1))
    workers = args.train_workers if args.train_workers is not None else max(0, min(6, (os.cpu_count() or 2) // 3))
    if args.parallel is None:
        args.parallel = device == "cuda"
    if args.eval_reserve_s is None:  # side by side, every evaluation runs after the training
        args.eval_reserve_s = 0.0 if args.no_eval or args.eval_stage else 150.0 if args.parallel else 75.0
    log(f"session on {machine}: budget {args.budget_s} s, models {names} "
        f"({'side by side' if args.parallel else f'one after another, shares {shares}'}), data {data_root}, "
        f"eval ranks {eval_ranks}, train workers {workers}, eval reserve {args.eval_reserve_s:.0f} s"
        + (f", {args.batch_scale:g}x each config's batch and rate" if args.batch_scale != 1 else ""))
    for p in plans:
        log(f"  {p['name']}: {p['config']}, protocol {p['protocol']}, "
            f"{'resumes ' + str(p['weights']) if p['init'] else 'starts fresh (weights of another size)'}")
    if args.dry:
        return 0

    work = Path(tempfile.mkdtemp(prefix="device-session-"))
    started_iso = datetime.fromtimestamp(t0, timezone.utc).isoformat(timespec="seconds")
    deadline = t0 + args.budget_s
    evals: dict[str, tuple[subprocess.Popen, float]] = {}
    done: dict[str, dict[str, Any]] = {}

    def finished(p: dict[str, Any], run_out: Path, trained_s: float, slice_s: float, ranks: int,
                 trained_in: str | None = None) -> None:
        """A model's run ended (``run_out`` holds its model.safetensors, profile and logs): keep
        its weights as shipped (fp16 for the paper tier), stage them for a later call
        (``--stage``), start its evaluation (unless ``--no-eval``)."""
        name, run_dir = p["name"], work / p["name"]
        run_dir.mkdir(parents=True, exist_ok=True)
        model_path = run_out / "model.safetensors"
        run_card = read_card(model_path)
        half = p["tier"] == "paper"
        new_path = run_dir / f"{name}-new.safetensors"
        save_checkpoint(load_checkpoint(model_path), new_path, half=half)
        shipped_path = run_dir / f"{name}-shipped.safetensors"
        shutil.copyfile(p["weights"], shipped_path)
        log(f"{name}: {run_card['iterations']} iterations ({run_card['iterations'] * run_card['train']['batch_size']} "
            f"samples) in {trained_s:.0f} s; val PSNR {run_card['val_psnr_final']:.3f}; "
            f"profile {json.dumps(run_card.get('profile', {}).get('ms_per_step'))}")
        if args.stage:  # the warm machine keeps it for the next call (ignored paths stay)
            keep = Path(args.stage) / name
            shutil.rmtree(keep, ignore_errors=True)
            for src in [model_path, model_path.with_suffix(".json"), run_out / "profile.json", *run_logs(run_out)]:
                if src.is_file():
                    (keep / src.relative_to(run_out)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, keep / src.relative_to(run_out))
            (keep / "stage.json").write_text(json.dumps({"trained_s": trained_s, "slice_s": slice_s,
                                                         "trained_in": trained_in or started_iso}) + "\n")
            log(f"{name}: staged in {keep} for a later call (--eval-stage)")
        if not args.no_eval:
            evals[name] = (launch_eval(p["protocol"], [shipped_path, new_path], run_dir / "eval", data_root, device,
                                       ranks, args.eval_limit, p["tier"], run_dir / "eval.log"), time.time())
        done[name] = {"plan": p, "run_card": run_card, "new": new_path, "half": half, "trained_s": trained_s,
                      "slice_s": slice_s, "run_dir": run_dir, "run_out": run_out, "trained_in": trained_in}

    def sets_for(p: dict[str, Any], slice_s: float, loader_workers: int) -> list[str]:
        from arasfsr.training import load_config
        from tools.recipes import scaled_to_batch

        scaled = scaled_to_batch(load_config(p["config"], SESSION_SETS)["train"], args.batch_scale) \
            if args.batch_scale != 1 else []
        return [*SESSION_SETS, *scaled, f"train.time_budget_s={slice_s:.1f}", f"data.num_workers={loader_workers}",
                *args.set]

    cpus = os.cpu_count() or 2
    # Evaluations that all run at once (side by side, or a later call's) share the cores:
    # on 16 cores 5 ranks each (protocol A took 25 s with 7 ranks alone on the H100 machine).
    shared_ranks = max(1, (cpus - 1) // len(plans)) if args.eval_ranks is None else eval_ranks

    if args.eval_stage:
        # A later call: evaluate (and bring back) what an earlier call on this machine trained.
        for p in plans:
            keep = Path(args.eval_stage) / p["name"]
            if not (keep / "model.safetensors").is_file():
                log(f"{p['name']}: nothing staged in {keep}")
                continue
            info = json.loads((keep / "stage.json").read_text())
            finished(p, keep, info["trained_s"], info["slice_s"], shared_ranks, trained_in=info["trained_in"])
    elif args.parallel:
        # All models at once on the one device: a step of these small models is launch-bound
        # (the H100 was busy 11-51 % of a step), so runs side by side share it at little cost
        # to each; every model gets the whole slice. Evaluations start as runs end.
        slice_s = deadline - time.time() - args.eval_reserve_s - args.overhead_s
        if slice_s < args.min_slice_s:
            raise SystemExit(f"device_session: {slice_s:.0f} s left to train: raise --budget-s")
        loader_workers = max(1, min(workers, cpus // (2 * len(plans))))
        runs: dict[str, tuple[subprocess.Popen, float, dict[str, Any]]] = {}
        for p in plans:
            run_dir = work / p["name"]
            run_dir.mkdir(parents=True)
            cmd = [sys.executable, "-m", "arasfsr.cli",
                   *train_argv(p["config"], data_root=data_root, out=run_dir / "run", init=p["init"],
                               overrides=sets_for(p, slice_s, loader_workers))]
            env = child_env(OMP_NUM_THREADS=str(max(1, cpus // (4 * len(plans)))))
            log(f"{p['name']}: training {p['config']} for {slice_s:.0f} s, alongside the others")
            runs[p["name"]] = (subprocess.Popen(cmd, env=env, stdout=open(run_dir / "train.log", "w"),
                                                stderr=subprocess.STDOUT), time.time(), p)
        while runs:
            for name, (proc, started, p) in list(runs.items()):
                if proc.poll() is None:
                    continue
                del runs[name]
                run_out = work / name / "run"
                if proc.returncode != 0 or not (run_out / "model.safetensors").is_file():
                    log(f"{name}: training failed (exit {proc.returncode})\n"
                        + (work / name / "train.log").read_text(errors="replace")[-3000:])
                    continue
                finished(p, run_out, time.time() - started, slice_s, shared_ranks)
            time.sleep(1.0)
    else:
        from arasfsr.training import train

        for i, p in enumerate(plans):
            left = deadline - time.time() - args.eval_reserve_s - args.overhead_s * (len(plans) - i)
            slice_s = left * p["share"] / sum(q["share"] for q in plans[i:])
            if slice_s < args.min_slice_s:
                log(f"{p['name']}: skipped, {slice_s:.0f} s left for it")
                continue
            name, run_dir = p["name"], work / p["name"]
            sets = sets_for(p, slice_s, workers)
            log(f"{name}: training {p['config']} for {slice_s:.0f} s")
            started = time.time()
            try:
                model_path = train(p["config"], out=run_dir / "run", data_root=data_root, init=p["init"],
                                   overrides=sets, command=f"tools/device_session.py ({p['config']}, "
                                                           f"{' '.join('--set ' + s for s in sets)})")
            except Exception:  # one model's failure must not cost the others their time
                log(f"{name}: training failed\n{traceback.format_exc()}")
                continue
            finished(p, model_path.parent, time.time() - started, slice_s, eval_ranks)

    summary: dict[str, Any] = {"started": started_iso, "machine": machine, "budget_s": args.budget_s,
                               "data_root": str(data_root), "parallel": args.parallel,
                               "evaluated": not args.no_eval, "models": {}}
    bundles: dict[str, list[tuple[Path, str]]] = {}
    for name, d in done.items():
        p, run_dir = d["plan"], d["run_dir"]
        results = run_dir / "eval" / "results.json"
        if name in evals:
            proc, launched = evals[name]
            try:
                proc.wait(timeout=max(5.0, deadline + args.eval_grace_s - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            eval_s = time.time() - launched
            verdict = compare(results, f"{name}-shipped", f"{name}-new") if results.is_file() else \
                {"improved": False, "error": f"evaluation did not finish (exit {proc.returncode}); see eval.log"}
        else:
            eval_s = 0.0
            verdict = {"improved": False, "error": "not evaluated (--no-eval): a later call with --eval-stage evaluates it"}
        rc = d["run_card"]
        record = {"date": summary["started"], **({"trained_in": d["trained_in"]} if d["trained_in"] else {}),
                  "machine": machine, "config": p["config"],
                  "iterations": rc["iterations"], "samples": rc["iterations"] * rc["train"]["batch_size"],
                  "device_seconds": round(d["trained_s"], 1), "eval_seconds": round(eval_s, 1),
                  "time_slice_s": round(d["slice_s"], 1), "train_faces": rc["data"]["train_images"],
                  "full_test": {k: verdict.get(k) for k in ("mean_shipped", "mean_new", "mean_delta", "improved")},
                  "profile": rc.get("profile")}
        card = session_card(rc, p["card"], record)
        card["weights_dtype"] = "float16" if d["half"] else "float32"
        final = run_dir / f"{name}.safetensors"
        shutil.copyfile(d["new"], final)
        (run_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
        files = [(final, f"{name}.safetensors"), (run_dir / f"{name}.json", f"{name}.json"),
                 (results, "eval/results.json"), (run_dir / "eval" / "results.md", "eval/results.md"),
                 (run_dir / "eval.log", "eval/eval.log"), (d["run_out"] / "profile.json", "profile.json")]
        files += [(csv, "metrics.csv") for csv in run_logs(d["run_out"])]
        bundles[name] = files
        summary["models"][name] = {**record, "verdict": verdict}
        if name in evals:
            log(f"{name}: full test mean PSNR shipped {verdict.get('mean_shipped')} -> new {verdict.get('mean_new')} "
                f"({'improved' if verdict['improved'] else 'not improved'}); eval {eval_s:.0f} s")
    summary["files"] = pack(out, bundles, log)
    summary["wall_s"] = round(time.time() - t0, 1)
    (out / "session.json").write_text(json.dumps(summary, indent=2) + "\n")
    files = sorted(p for p in out.iterdir() if p.is_file())
    ok = len(files) <= MAX_FILES and all(p.stat().st_size <= MAX_FILE_BYTES for p in files)
    log(f"session done in {summary['wall_s']} s; {len(files)} files in {out}" + ("" if ok else " - OVER THE RETURN LIMITS"))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok and done else 1


# -- afterwards: ship what improved ---------------------------------------------------------
def session_stamp(started: str) -> str:
    """The folder stamp of a session started at ISO time ``started``: 20261126T1801."""
    return started[:16].replace(":", "").replace("-", "")


def ship(files_at: Path, weights_dir: Path | None, results_dir: Path, force: bool = False) -> int:
    summary = json.loads((files_at / "session.json").read_text())
    stamp = session_stamp(summary["started"])
    for name, info in summary["models"].items():
        verdict = info["verdict"]
        print(f"{name}: {verdict.get('mean_shipped')} -> {verdict.get('mean_new')} dB mean over "
              f"{len(verdict.get('rows', []))} full-test rows", end="; ")
        if not (verdict.get("improved") or force):
            print("not shipped")
            continue
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(files_at / f"{name}.tar") as tar:
            tar.extractall(tmp, filter="data")
            tmp = Path(tmp)
            weights = weights_file(name, weights_dir)
            shutil.copyfile(tmp / f"{name}.safetensors", weights)
            shutil.copyfile(tmp / f"{name}.json", weights.with_suffix(".json"))
            dest = results_dir / "eval" / "sessions" / f"{stamp}-{name}"
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("eval/results.json", "eval/results.md", "profile.json"):
                if (tmp / f).is_file():
                    shutil.copyfile(tmp / f, dest / Path(f).name)
            if (tmp / "metrics.csv").is_file():
                (results_dir / "logs").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tmp / "metrics.csv", results_dir / "logs" / f"{name}.csv")
        print(f"shipped to {weights}, results in {dest}")
    if weights_dir is None:
        write_research_manifest()
    return 0


# -- the benchmark of issue 9 item 1 ----------------------------------------------------------
def benchmark(args: argparse.Namespace) -> int:
    """Item 1 of issue 9 in one call: today's trainer (the workers path, no EMA) against the
    device path with the speed switches, on paper/A-arasfsr (also compiled) and paper/P-arasfsr."""
    data_root = unpack_shards(Path(args.devdata), Log(None)) or Path(args.data_root or resolve_data_root())
    out = Path(args.out or os.environ.get("OUT") or "session-out")
    out.mkdir(parents=True, exist_ok=True)
    fast = "device+train.fused_adam=true+train.channels_last=true"
    # The H100 showed a step launch-bound at batch 16 (GPU busy 11-51 %): CUDA graphs
    # (compile mode reduce-overhead) and 4x the faces per step are the two ways to more samples/s.
    quarter = max(50, args.benchmark_iterations // 4)  # batch 64: the same faces as the batch-16 runs
    import torch

    from arasfsr.training import load_config
    from tools.recipes import scaled_to_batch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    code = 0
    for config in args.benchmark_configs.split(","):
        train_cfg = load_config(config)["train"]
        # batch64-lr4x: 4x the faces at 4x the rate (warm-up and EMA over the same faces), which
        # kept the learning per face of a fine-tune on a CPU (tools/bench/batch_scaling.py)
        # today: the trainer issue 9 started from (each query gathers its unfolded code);
        # device-gathered: the device path without the projected first layer, to isolate it
        catalogue = {"today": "workers+train.ema_decay=null+train.query=gathered", "device": fast,
                     "device-gathered": f"{fast}+train.query=gathered",
                     "batch64": f"{fast}+train.batch_size=64",
                     "batch64-lr4x": "+".join([fast, *scaled_to_batch(train_cfg, 64 / train_cfg["batch_size"])]),
                     "graphs": f"{fast}+train.compile=reduce-overhead",
                     "graphs64": f"{fast}+train.compile=reduce-overhead+train.batch_size=64"}
        if args.benchmark_variants:
            names = args.benchmark_variants.split(",")
        else:  # protocol P's LR size per batch would compile a graph per size: A only
            names = ["today", "device", "batch64"] + ([] if args.skip_compile or config != "paper/A-arasfsr"
                                                      else ["graphs"])
        unknown = sorted(set(names) - set(catalogue))
        if unknown:
            raise SystemExit(f"device_session: unknown benchmark variants {unknown}; known: {sorted(catalogue)}")
        cmd = [sys.executable, "-m", "tools.bench.train_speed", "--device", device,
               "--data-root", str(data_root), "--configs", config, "--iterations", str(args.benchmark_iterations),
               "--iterations-of", f"today={args.baseline_iterations}",
               *[f"{n}={quarter}" for n in names if "64" in n],
               "--variants", *[f"{n}={catalogue[n]}" for n in names],
               "--json", str(out / f"benchmark-{config.replace('/', '-')}.json")]
        print(" ".join(cmd), flush=True)
        code |= subprocess.run(cmd, env=child_env(), cwd=ROOT).returncode
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="arasfsr,arasfsr-a,liif-a", help="shipped names, in priority order")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock seconds for the whole session")
    p.add_argument("--shares", default=None, help="budget shares per model (default 2,1,1,...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--batch-scale", type=float, default=1.0, metavar="K",
                   help="train K times each config's batch at K times its rate, warm-up and EMA over the same "
                        "faces (tools/recipes.py: scaled_to_batch); --set still wins")
    p.add_argument("--tier", default=None, help="train this tier's configs instead of the shipped models' (smoke: a test)")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="where the shipped state is read (default: each model's weights in this checkout)")
    p.add_argument("--devdata", default=str(ROOT / ".devdata"), help="folder of the carried shards")
    p.add_argument("--data-root", default=None, help="data root when no shards were carried")
    p.add_argument("--out", default=None, help="results folder (default $OUT)")
    p.add_argument("--eval-limit", type=int, default=None, help="faces per test set (default: all; tests only)")
    p.add_argument("--eval-ranks", type=int, default=None, help="evaluation processes (default ~half the cores)")
    p.add_argument("--train-workers", type=int, default=None, help="loader processes for JPEG-bearing LR inputs")
    p.add_argument("--eval-reserve-s", type=float, default=None,
                   help="kept for evaluation after the training (default 75 s one after another, 150 s side by side)")
    p.add_argument("--eval-grace-s", type=float, default=30.0, help="evaluation may run this far past the budget")
    p.add_argument("--overhead-s", type=float, default=20.0, help="per model: start, compile, export")
    p.add_argument("--min-slice-s", type=float, default=30.0, help="a model with less time left is skipped")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=None,
                   help="train all models at once on the one device (default: on CUDA) instead of one after another")
    p.add_argument("--stage", default=None, metavar="DIR",
                   help="also keep each trained model in DIR (e.g. .devdata/stage: the warm machine keeps it) "
                        "for a later call's --eval-stage")
    p.add_argument("--no-eval", action="store_true",
                   help="train only (with --stage): the whole call trains, a later call evaluates")
    p.add_argument("--eval-stage", default=None, metavar="DIR",
                   help="train nothing: evaluate and bring back what an earlier call staged in DIR")
    p.add_argument("--dry", action="store_true", help="print the plan only")
    p.add_argument("--benchmark", action="store_true", help="item 1: today's trainer vs the device path")
    p.add_argument("--benchmark-configs", default="paper/A-arasfsr,paper/P-arasfsr")
    p.add_argument("--benchmark-iterations", type=int, default=1000)
    p.add_argument("--baseline-iterations", type=int, default=200)
    p.add_argument("--benchmark-variants", default=None,
                   help="comma list of today, device, device-gathered, batch64, batch64-lr4x, graphs, graphs64 (default: the first three, "
                        "and graphs on paper/A-arasfsr unless --skip-compile)")
    p.add_argument("--skip-compile", action="store_true", help="benchmark without the compiled variant (its compile "
                   "takes minutes of a lease)")
    p.add_argument("--ship", type=Path, default=None, metavar="FILES_AT", help="here: ship what a session improved")
    p.add_argument("--ship-all", action="store_true", help="with --ship: also the models that did not improve")
    p.add_argument("--results-dir", type=Path, default=ROOT / "results", help="with --ship: eval results and logs go here")
    args = p.parse_args(argv)
    if args.ship:
        return ship(args.ship, args.weights_dir, args.results_dir, args.ship_all)
    if args.no_eval and not args.stage:
        p.error("--no-eval without --stage would throw the training away: stage it for a later --eval-stage")
    if args.benchmark:
        return benchmark(args)
    return session(args)


if __name__ == "__main__":
    sys.exit(main())
