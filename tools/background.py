"""The background trainer: continue a shipped model on this machine's CPU while you work, then
evaluate it and ship it only if it improved.

    python -m tools.background start                  # when you begin work (arasfsr, 3 h planned)
    python -m tools.background status                 # how far it is
    python -m tools.background status --blotch        # and the last checkpoint's realworld/ blotch score
    python -m tools.background finish                 # before you stop: stop, evaluate, ship if better

``start`` launches ``arasfsr train`` detached, at the lowest priority (``nice 19``), resuming
the shipped model's weights (``--init``; never from scratch) in its config: bf16 mixed
precision where the CPU multiplies bf16 natively, the batches made in the training process
(``data.pipeline: device``), a checkpoint every ``--checkpoint-min`` minutes, and the session
schedule: a warm-up, then ``--schedule constant`` (the default: at equal samples it reached a
higher val PSNR, benchmarks/results/batch-scaling/epyc-cpu-P-precision-schedule.json) or ``anneal``
(cosine down to 1 % of the rate over the planned ``--hours``). The run lives in ``runs/background/NAME/`` (``run/`` is the training
folder, ``session.json`` the plan, ``train.log`` its output). If the process dies (SIGKILL, a
reboot), ``start`` again resumes it from its last checkpoint, exactly, with the time it already
spent counted against its plan.

``finish`` asks the run to stop after its current step (``run/STOP``; a dead run is resumed for
one step to export it), then scores the new weights against the shipped ones and bicubic:

- selection on ``utkface/val`` (every row of the model's protocol on the val faces,
  ``arasfsr eval --split val``): the new weights ship only if their mean PSNR over the rows is
  higher;
- the full-test margin over bicubic at 16->128 (all ``utkface/test`` faces), reported.

Shipping writes the weights (fp16 for the paper tier, as shipped) and the card, whose
``sessions`` gain this run (machine, precision, threads, schedule, samples, CPU seconds, val
and test scores) and whose ``totals`` accumulate, per machine too; the eval results go to
``results/eval/sessions/STAMP-NAME/``. Then regenerate RESULTS.md
(``python -m tools.make_results``) and commit. The session folder is kept as
``runs/background/NAME-STAMP`` so the next ``start`` begins afresh from what ships.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arasfsr.checkpoint import load_checkpoint, read_card, save_checkpoint
from arasfsr.cli.train import train_argv
from arasfsr.data import resolve_data_root
from arasfsr.evaluation.runner import file_sha256
from arasfsr.registry import WEIGHTS_DIR
from arasfsr.training.run import STOP_FILE, machine_name
from tools import ROOT
from arasfsr.training import load_config

from tools.device_session import SESSION_SCHEDULE, child_env, compare, plan_models, resumable, session_card
from tools.weights import weights_file

BACKGROUND = ROOT / "runs" / "background"
SCHEDULES = {"anneal": SESSION_SCHEDULE,  # cosine to 1 % of the rate by the planned end
             "constant": ["train.lr_schedule=step", "train.lr_decay_at=1.0"]}  # the rate after the warm-up
TEST_ROW = "16-128"  # the full-test margin the card reports


def session_dir(args: argparse.Namespace) -> Path:
    return Path(args.sessions) / args.model


def read_session(folder: Path) -> dict[str, Any] | None:
    path = folder / "session.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_session(folder: Path, session: dict[str, Any]) -> None:
    tmp = folder / "session.json.tmp"
    tmp.write_text(json.dumps(session, indent=2) + "\n")
    os.replace(tmp, folder / "session.json")


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child that ended) is not a running trainer
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def cpu_model() -> str:
    """The CPU's model and how it multiplies bf16 (the speed of a bf16 step depends on it)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    native = "AMX" if "amx_tile" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else "no native bf16"
    return f"{machine_name('cpu').rsplit(',', 1)[0]} ({native})"


def training_sets(args: argparse.Namespace) -> list[str]:
    """The run's config overrides: one place for what a background run is."""
    return ["data.pipeline=device", f"data.num_workers={args.workers}", "train.iterations=100000000",
            "train.val_every=100000000", "train.warmup=100", *SCHEDULES[args.schedule],
            f"train.precision={args.precision}", "train.fused_adam=true", "train.log_every=10",
            "train.keep_checkpoints=latest", "train.profile=true",
            f"train.checkpoint_every_s={60 * args.checkpoint_min:g}", f"train.time_budget_s={3600 * args.hours:g}",
            *args.set]


def resume_argv(session: dict[str, Any], run: Path) -> list[str]:
    """``arasfsr train`` arguments that continue the session's run from its last checkpoint."""
    argv = train_argv(session["config"], data_root=Path(session["data_root"]), overrides=session["sets"])
    return [*argv, "--resume", str(run)]


def session_stamp(session: dict[str, Any]) -> str:
    """The session's start as YYYYMMDDTHHMM, naming its kept folder and its results."""
    return session["started"][:16].replace(":", "").replace("-", "")


def launch(folder: Path, argv: list[str], threads: int) -> int:
    """``arasfsr train ARGV`` detached in its own session, niced, logging to train.log."""
    env = child_env(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    with open(folder / "train.log", "ab") as log:
        proc = subprocess.Popen(["nice", "-n", "19", sys.executable, "-m", "arasfsr.cli", *argv], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    return proc.pid


def start(args: argparse.Namespace) -> int:
    folder = session_dir(args)
    session = read_session(folder)
    run = folder / "run"
    if session is not None:
        if alive(session.get("pid")):
            print(f"background: {args.model} is already training (pid {session['pid']}); "
                  f"python -m tools.background status")
            return 0
        if (run / "model.safetensors").is_file():
            print(f"background: {args.model}'s run has ended; python -m tools.background finish")
            return 0
        if not (run / "checkpoints" / "last.safetensors").is_file():
            raise SystemExit(f"background: {folder} holds a run that never checkpointed; remove it to start afresh")
        # Killed: resume from the last checkpoint with the settings it started with.
        argv = resume_argv(session, run)
        session["pid"] = launch(folder, argv, session["threads"])
        session.setdefault("resumes", []).append(now_iso())
        write_session(folder, session)
        print(f"background: {args.model} resumed from its last checkpoint (pid {session['pid']})")
        return 0
    weights_dir = Path(args.weights_dir) if args.weights_dir else None
    current = weights_file(args.model, weights_dir)
    shipped = current.is_file()
    # A model that does not ship yet starts from another's weights (--init-from) in its own config.
    source = args.model if shipped else args.init_from
    if source is None:
        raise SystemExit(f"background: {args.model} does not ship yet: name the model to start it from "
                         f"(--init-from arasfsr) and its config (--config paper/R-arasfsr)")
    plan = plan_models([source], [1.0], weights_dir, None)[0]
    config = args.config or plan["config"]
    if not resumable(plan["weights"], config):
        raise SystemExit(f"background: {source}'s weights do not fit config {config}; nothing to continue")
    folder.mkdir(parents=True, exist_ok=True)
    data_root = Path(args.data_root or resolve_data_root()).resolve()
    sets = training_sets(args)
    argv = train_argv(config, data_root=data_root, out=run, init=plan["weights"], overrides=sets)
    cfg = load_config(config, sets)
    session = {"model": args.model, "config": config, "protocol": cfg["protocol"], "tier": cfg["tier"],
               "weights": str(plan["weights"]), "ships_as": str(current if shipped else (weights_dir or WEIGHTS_DIR) / f"{args.model}.safetensors"),
               "description": args.description, "data_root": str(data_root), "sets": sets,
               "schedule": args.schedule, "threads": args.threads, "hours": args.hours, "machine": cpu_model(),
               "started": now_iso(), "command": "arasfsr " + " ".join(argv)}
    session["pid"] = launch(folder, argv, args.threads)
    write_session(folder, session)
    print(f"background: {args.model} training from {plan['weights'].name} ({config}, {args.schedule}, "
          f"{args.hours:g} h planned, {args.threads} threads, nice 19; pid {session['pid']}); "
          f"finish with: python -m tools.background finish --model {args.model}")
    return 0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def progress(folder: Path) -> dict[str, Any]:
    """Steps, loss and speed of the run so far, from its CSV log."""
    import csv

    logs = sorted((folder / "run").glob("logs/version_*/metrics.csv"))
    rows: list[dict[str, str]] = []
    for path in logs:
        with open(path) as fh:
            rows += list(csv.DictReader(fh))
    steps = [r for r in rows if r.get("loss")]
    speeds = [float(r["steps_per_s"]) for r in rows if r.get("steps_per_s")][-10:]
    return {"step": int(steps[-1]["step"]) + 1 if steps else 0,
            "loss": float(steps[-1]["loss"]) if steps else None,
            "lr": float(steps[-1]["lr"]) if steps and steps[-1].get("lr") else None,
            "steps_per_s": round(sorted(speeds)[len(speeds) // 2], 4) if speeds else None}


def status(args: argparse.Namespace) -> int:
    folder = session_dir(args)
    session = read_session(folder)
    if session is None:
        print(f"background: no session for {args.model}; python -m tools.background start --model {args.model}")
        return 0
    p = progress(folder)
    state = "training" if alive(session.get("pid")) else \
        "ended" if (folder / "run" / "model.safetensors").is_file() else "stopped (start resumes it)"
    blotch = {"blotch": checkpoint_blotch(session, folder / "run")} if args.blotch else {}
    print(json.dumps({"model": args.model, "state": state, "started": session["started"], **p, **blotch}))
    return 0


def checkpoint_blotch(session: dict[str, Any], run: Path) -> dict[str, Any] | None:
    """finish's realworld/ blotch check on the run's last checkpoint, while it trains: the
    weights go to a temporary file, never into the run (its model.safetensors means ended)."""
    import tempfile

    from tools.train_all import export_last

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "checkpoint.safetensors"
        if not export_last(run, weights):
            return None
        scores = realworld_check(session, Path(session["weights"]), weights)
        step = read_card(weights).get("iterations")
    if scores is None:
        return None
    return {"step": step, "faces": scores["faces"], "shipped": scores["shipped"], "checkpoint": scores["new"]}


def stop_run(folder: Path, session: dict[str, Any], timeout_s: float) -> None:
    """Have the run export its weights: ask it to stop, or resume a dead one for one step."""
    run = folder / "run"
    if (run / "model.safetensors").is_file():
        return
    (run / STOP_FILE).touch()
    if not alive(session.get("pid")):
        if not (run / "checkpoints" / "last.safetensors").is_file():
            raise SystemExit(f"background: {folder} has no checkpoint: nothing was trained")
        argv = resume_argv(session, run)
        env = child_env(OMP_NUM_THREADS=str(session["threads"]))
        with open(folder / "train.log", "ab") as log:
            subprocess.run([sys.executable, "-m", "arasfsr.cli", *argv], env=env, cwd=ROOT, check=True,
                           stdout=log, stderr=subprocess.STDOUT)
        return
    deadline = time.time() + timeout_s
    while alive(session["pid"]) and time.time() < deadline:
        time.sleep(2.0)
    if alive(session["pid"]):
        os.killpg(session["pid"], signal.SIGKILL)
        raise SystemExit(f"background: the run did not stop within {timeout_s:.0f} s; killed it (start resumes it)")
    if not (run / "model.safetensors").is_file():
        raise SystemExit(f"background: the run ended without exporting; see {folder / 'train.log'}")


def score_file(args: argparse.Namespace, session: dict[str, Any], digest: str, folder: str) -> Path:
    """Where the scores of the weights ``digest`` on one of finish's evaluations are kept."""
    limit = args.eval_limit or "all"
    return Path(args.sessions) / "scores" / f"{digest[:20]}-{session['protocol']}-{folder}-{limit}.json"


def keep_scores(results: Path, model: str, target: Path) -> None:
    """The result cells of ``model`` in ``results`` (an ``arasfsr eval`` results.json), for
    the next finish, whose shipped weights these may be."""
    res = json.loads(results.read_text())
    cells = [r for r in res["results"] if r["model"] == model]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"rows": [r["key"] for r in res["rows"]], "face_counts": res.get("face_counts"),
                                  "cells": cells}) + "\n")


def known_scores(target: Path, results: Path) -> list[dict[str, Any]] | None:
    """Kept cells that fit an evaluation of the same rows and faces as ``results``, or None."""
    if not target.is_file():
        return None
    kept, res = json.loads(target.read_text()), json.loads(results.read_text())
    same = kept["rows"] == [r["key"] for r in res["rows"]] and kept["face_counts"] == res.get("face_counts")
    return kept["cells"] if same else None


def add_scores(results: Path, model: str, cells: list[dict[str, Any]], digest: str) -> None:
    """Put kept cells into ``results`` as ``model``'s, marked as taken from the store."""
    res = json.loads(results.read_text())
    res["models"].append({"name": model, "scores_of_weights": digest})
    res["results"] += [{**cell, "model": model} for cell in cells]
    results.write_text(json.dumps(res, indent=1) + "\n")


def evaluate(session: dict[str, Any], shipped: Path, new: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Val selection over the protocol's rows and the full-test 16->128 margin.

    The shipped weights were usually the new weights of the session before: their scores were
    kept then (``SESSIONS/scores/``, by the weights' SHA-256), so only the new weights and
    bicubic are evaluated, about half the time. Kept scores count only for the same rows and faces."""
    base = [sys.executable, "-m", "arasfsr.cli", "eval", "--protocol", session["protocol"], "--data",
            session["data_root"], "--no-pictures", "--tier", session["tier"], "--overwrite"]
    limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
    env = child_env(OMP_NUM_THREADS=str(args.eval_threads))
    started = time.time()
    shipped_digest, new_digest = file_sha256(shipped), file_sha256(new)
    for folder, extra in (("val", ["--split", "val"]), ("test", ["--only", TEST_ROW])):
        kept = score_file(args, session, shipped_digest, folder)
        models = [str(new)] if kept.is_file() else [str(shipped), str(new)]
        results = out / folder / "results.json"
        subprocess.run([*base, "--model", *models, "--out", str(out / folder), *extra, *limit],
                       env=env, cwd=ROOT, check=True)
        if len(models) == 1:
            cells = known_scores(kept, results)
            if cells is None:  # other rows or faces than when they were kept: evaluate them now
                subprocess.run([*base, "--model", str(shipped), str(new), "--out", str(out / folder), *extra,
                                *limit], env=env, cwd=ROOT, check=True)
            else:
                add_scores(results, shipped.stem, cells, shipped_digest)
        if not kept.is_file():
            keep_scores(results, shipped.stem, kept)
        keep_scores(results, new.stem, score_file(args, session, new_digest, folder))
    verdict = compare(out / "val" / "results.json", shipped.stem, new.stem)
    test = compare(out / "test" / "results.json", shipped.stem, new.stem)["rows"]
    return {"val": verdict, "test": test[0] if test else None, "eval_seconds": round(time.time() - started, 1)}


# Models for real photos (protocol R): better on val is not enough, the real faces of
# realworld/ must not get blotchier (a session that won on val did; docs/degradations.md).
REAL_PHOTO_PROTOCOLS = ("R",)


def realworld_check(session: dict[str, Any], shipped: Path, new: Path) -> dict[str, Any] | None:
    """The mean blotch score of the shipped and the new weights on realworld/ (None without it)."""
    from arasfsr import load_model
    from arasfsr.imageio import image_files
    from tools.realworld_figure import mean_blotch

    folder = Path(session["data_root"]) / "realworld"
    faces = image_files(folder) if folder.is_dir() else []
    if not faces:
        return None
    scores = mean_blotch({"shipped": load_model(shipped), "new": load_model(new)}, faces)
    return {"faces": len(faces), **{k: round(v, 4) for k, v in scores.items()}}


def finish(args: argparse.Namespace) -> int:
    folder = session_dir(args)
    session = read_session(folder)
    if session is None:
        print(f"background: no session for {args.model}: nothing to finish")
        return 0
    stop_run(folder, session, args.stop_timeout_s)
    run = folder / "run"
    run_card = read_card(run / "model.safetensors")
    shipped_path = Path(session["weights"])
    work = folder / "eval"
    work.mkdir(exist_ok=True)
    shipped = work / f"{args.model}-shipped.safetensors"
    new = work / f"{args.model}-new.safetensors"
    shutil.copyfile(shipped_path, shipped)
    save_checkpoint(load_checkpoint(run / "model.safetensors"), new, half=session["tier"] == "paper")
    scores = evaluate(session, shipped, new, work, args)
    val, test = scores["val"], scores["test"]
    photos = realworld_check(session, shipped, new) if session["protocol"] in REAL_PHOTO_PROTOCOLS else None
    trained_s = float(run_card.get("wall_time_s") or 0.0)
    record = {"date": session["started"], "machine": session["machine"], "device": "cpu",
              "precision": run_card.get("precision"), "threads": session["threads"],
              "schedule": session["schedule"], "config": session["config"], "iterations": run_card["iterations"],
              "samples": run_card["iterations"] * run_card["train"]["batch_size"],
              "cpu_seconds": round(trained_s, 1), "eval_seconds": scores["eval_seconds"],
              "resumes": len(session.get("resumes", [])),
              "val": {k: val.get(k) for k in ("mean_shipped", "mean_new", "mean_delta", "improved")},
              "full_test_16_128": test, "profile": run_card.get("profile"),
              **({"realworld_blotch": photos} if photos else {})}
    improved = bool(val.get("improved")) and (photos is None or photos["new"] <= photos["shipped"])
    summary = {**record, "shipped": improved and not args.no_ship}
    (folder / "finished.json").write_text(json.dumps({**summary, "val_rows": val["rows"]}, indent=2) + "\n")
    print(f"background: {args.model}: {record['iterations']} iterations ({record['samples']} samples) in "
          f"{trained_s / 3600:.2f} h on {session['machine']} ({record['precision']}, {session['threads']} threads)")
    print(f"  val mean PSNR over {len(val['rows'])} rows: shipped {val['mean_shipped']} -> new {val['mean_new']} "
          f"({val['mean_delta']:+.3f} dB)")
    if test:
        print(f"  full test {TEST_ROW} ({test['faces']} faces): margin over bicubic {test['margin_shipped']:+.3f} -> "
              f"{test['margin_new']:+.3f} dB")
    if photos:
        print(f"  realworld/ blotch score (x4 from 64 px, mean of {photos['faces']} faces): shipped "
              f"{photos['shipped']:.3f} -> new {photos['new']:.3f}")
    if improved and not args.no_ship:
        ship(args.model, session, run_card, record, new, work, Path(args.results_dir))
    else:
        why = ("no better on val" if not val.get("improved") else
               "blotchier on the real photos of realworld/" if not improved else "")
        print("  not shipped" + (f": {why}" if why else ""))
    folder.rename(folder.with_name(f"{args.model}-{session_stamp(session)}"))
    return 0


def ship(name: str, session: dict[str, Any], run_card: dict[str, Any], record: dict[str, Any], new: Path,
         work: Path, results_dir: Path) -> None:
    target = Path(session.get("ships_as") or session["weights"])
    started_from = read_card(Path(session["weights"]))
    if target != Path(session["weights"]):  # a new model: its own name, the totals of its source
        started_from = {**started_from, "name": name, "description": session.get("description") or name}
        for key in ("run", "how", "data_note"):
            started_from.pop(key, None)
    card = session_card(run_card, started_from, record)
    card["weights_dtype"] = "float16" if session["tier"] == "paper" else "float32"
    shutil.copyfile(new, target)
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    dest = results_dir / "eval" / "sessions" / f"{session_stamp(session)}-{name}"
    for result in sorted(work.glob("*/results.*")):
        (dest / result.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result, dest / result.parent.name / result.name)
    print(f"  shipped to {target}; results in {dest}; "
          f"now: python -m tools.make_results && git add -A && git commit")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    for action in ("start", "status", "finish"):
        a = sub.add_parser(action)
        a.add_argument("--model", default="arasfsr", help="the shipped model to continue")
        a.add_argument("--sessions", default=str(BACKGROUND), help="where sessions live (default runs/background)")
        if action == "start":
            a.add_argument("--hours", type=float, default=3.0, help="the planned length (the schedule fits it)")
            a.add_argument("--schedule", choices=sorted(SCHEDULES), default="constant",
                           help="constant (default: measured better at equal samples) or anneal")
            a.add_argument("--threads", type=int, default=2, help="torch threads (it runs at nice 19)")
            a.add_argument("--workers", type=int, default=1, help="loader processes for the JPEG inputs")
            a.add_argument("--precision", default="auto", help="a Lightning precision (auto: bf16-mixed where native)")
            a.add_argument("--checkpoint-min", type=float, default=10.0, help="minutes between checkpoints")
            a.add_argument("--weights-dir", default=None,
                           help="where shipped weights are read and written (default: where each model ships; "
                                "a new model goes into the package)")
            a.add_argument("--data-root", default=None)
            a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
            a.add_argument("--init-from", default=None, metavar="NAME",
                           help="a model that does not ship yet starts from this shipped model's weights")
            a.add_argument("--config", default=None, help="its training config (default: the shipped card's)")
            a.add_argument("--description", default=None, help="the card's description of a new model")
        if action == "status":
            a.add_argument("--blotch", action="store_true",
                           help="score the last checkpoint on realworld/ as finish will (a minute or two)")
        if action == "finish":
            a.add_argument("--no-ship", action="store_true", help="evaluate only")
            a.add_argument("--eval-limit", type=int, default=None, help="faces per set (tests only)")
            a.add_argument("--eval-threads", type=int, default=2)
            a.add_argument("--stop-timeout-s", type=float, default=900.0)
            a.add_argument("--results-dir", default=str(ROOT / "results"), help="eval results go to its eval/sessions/")
    args = p.parse_args(argv)
    return {"start": start, "status": status, "finish": finish}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
