"""The prepared device session, end to end on a CPU with the smoke tier: data shards for
consecutive calls, resuming shipped state, training to a time budget, evaluation, the
return limits, cards that accumulate, and shipping what improved."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tools import ROOT, device_session, pack_faces


def _env() -> dict[str, str]:
    """This checkout's package and its tools (``python -m tools.device_session``)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]), OMP_NUM_THREADS="1")


def test_shards_fill_each_call_and_unpack_into_a_data_root(shared_data, tmp_path):
    # A tree that leaves ~22 MiB per call: the evaluation faces and some training faces in
    # call 1, the rest of the 600 faces after.
    plan = pack_faces.device_calls(shared_data, tmp_path / "dd", count=600, margin_mb=1.0, tree=41 * 2**20)
    calls = plan["calls"]
    assert len(calls) >= 2 and all(c["bytes"] <= plan["call_capacity_bytes"] for c in calls)
    assert sum(c["train_faces"] for c in calls) == 600 and calls[0]["tars"][0]["tar"] == "eval.tar"
    for call in calls:
        on_disk = sum(p.stat().st_size for p in (tmp_path / "dd" / Path(call["carry"]).name).iterdir())
        assert on_disk == call["bytes"]
    root = device_session.unpack_shards(tmp_path / "dd", device_session.Log(None))
    train = sorted(p.name for p in (root / "utkface" / "train").iterdir())
    assert train == sorted(p.name for p in pack_faces.training_order(shared_data)[:600])
    assert len(list((root / "utkface" / "test").iterdir())) == 1000 and len(list((root / "ffhq" / "test").iterdir())) == 10
    same = shared_data / "utkface" / "train" / train[0]
    assert (root / "utkface" / "train" / train[0]).read_bytes() == same.read_bytes()  # the original bytes


def _shipped(face_data: Path, tmp_path: Path, models: tuple[tuple[str, str], ...]) -> Path:
    """A weights folder of smoke-tier models standing in for the shipped ones."""
    from arasfsr.checkpoint import read_card
    from arasfsr.training import train

    weights = tmp_path / "weights"
    weights.mkdir()
    for name, config in models:
        path = train(config, out=tmp_path / f"seed-{name}", data_root=face_data, command="seed")
        card = {**read_card(path), "name": name, "description": f"smoke {name}"}
        (weights / f"{name}.safetensors").write_bytes(path.read_bytes())
        (weights / f"{name}.json").write_text(json.dumps(card))
    return weights


@pytest.mark.parametrize("mode", ["--no-parallel", "--parallel"])
def test_session_resumes_trains_evaluates_and_ships(face_data, tmp_path, mode):
    weights = _shipped(face_data, tmp_path, (("arasfsr", "smoke/P-arasfsr"), ("liif-a", "smoke/A-liif")))
    out = tmp_path / "OUT"
    cmd = [sys.executable, "-m", "tools.device_session", "--models", "arasfsr,liif-a",
           "--weights-dir", str(weights), "--budget-s", "45", "--eval-limit", "2", "--eval-reserve-s", "6",
           "--overhead-s", "3", "--min-slice-s", "1", "--eval-ranks", "1", "--train-workers", "1",
           # however loaded the machine, the evaluations finish: the test is not about their speed
           "--eval-grace-s", "1200",
           "--data-root", str(face_data), "--devdata", str(tmp_path / "none"), "--out", str(out), mode]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["arasfsr.tar", "liif-a.tar", "session.json", "session.log"], (out / "session.log").read_text()
    summary = json.loads((out / "session.json").read_text())
    slices = {n: m["time_slice_s"] for n, m in summary["models"].items()}
    assert summary["parallel"] == (mode == "--parallel")
    if mode == "--parallel":  # side by side: every model trains for the whole slice
        assert slices["arasfsr"] == slices["liif-a"]
    else:
        # the first model's share is twice the other's (the slices themselves depend on the machine's speed)
        assert "one after another, shares [2.0, 1.0]" in (out / "session.log").read_text()
    for name, seed_iters in (("arasfsr", 4), ("liif-a", 4)):
        with tarfile.open(out / f"{name}.tar") as tar:
            assert {"%s.safetensors" % name, "%s.json" % name, "eval/results.json", "metrics.csv"} <= set(tar.getnames())
            card = json.loads(tar.extractfile(f"{name}.json").read())
        model = summary["models"][name]
        assert model["iterations"] > 0 and card["iterations"] == model["iterations"]
        assert card["totals"]["iterations"] == seed_iters + model["iterations"]  # accumulated over sessions
        assert card["totals"]["device_seconds"] >= model["device_seconds"] > 0
        assert card["sessions"][-1]["config"] == card["sessions"][-1]["config"] and card["name"] == name
        assert card["init"]["weights"].endswith(f"{name}.safetensors") and card["pipeline"] == "device"
        rows = model["verdict"]["rows"]
        assert rows and all(row["faces"] == 2 for row in rows if row["row"].startswith("utkface"))
    before = (weights / "liif-a.safetensors").read_bytes()
    r = subprocess.run([sys.executable, "-m", "tools.device_session", "--ship", str(out),
                        "--ship-all", "--weights-dir", str(weights), "--results-dir", str(tmp_path / "results")],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (weights / "liif-a.safetensors").read_bytes() != before
    assert json.loads((weights / "liif-a.json").read_text())["sessions"]
    assert list((tmp_path / "results" / "eval" / "sessions").glob("*-liif-a/results.json"))


@pytest.mark.parametrize("mode", ["--no-parallel", "--parallel"])  # --parallel: what a GPU session runs
def test_a_session_can_train_in_one_call_and_evaluate_in_the_next(face_data, tmp_path, mode):
    # A call is 10 minutes, a lease 15: the first call only trains and stages its weights on
    # the machine, the next evaluates them against the shipped ones and brings them back.
    weights = _shipped(face_data, tmp_path, (("liif-a", "smoke/A-liif"),))
    stage = tmp_path / "devdata" / "stage"
    common = [sys.executable, "-m", "tools.device_session", "--models", "liif-a",
              "--weights-dir", str(weights), "--eval-limit", "2", "--overhead-s", "3", "--min-slice-s", "1",
              "--eval-ranks", "1", "--train-workers", "1", "--data-root", str(face_data),
              "--devdata", str(tmp_path / "none"), mode]
    first, second = tmp_path / "OUT1", tmp_path / "OUT2"
    r = subprocess.run([*common, "--budget-s", "20", "--no-eval", "--stage", str(stage), "--out", str(first),
                        "--batch-scale", "2"], env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((first / "session.json").read_text())
    trained = summary["models"]["liif-a"]
    assert not summary["evaluated"] and trained["iterations"] > 0 and not trained["verdict"]["improved"]
    assert "eval reserve 0 s" in (first / "session.log").read_text()  # the call trains throughout
    assert trained["samples"] == 4 * trained["iterations"]  # twice the smoke tier's batch of 2
    with tarfile.open(first / "liif-a.tar") as tar:  # the unevaluated weights come back too
        assert {"liif-a.safetensors", "liif-a.json", "metrics.csv"} <= set(tar.getnames())
        assert "eval/results.json" not in tar.getnames()
        recipe = json.loads(tar.extractfile("liif-a.json").read())["train"]
    assert (recipe["batch_size"], recipe["lr"], recipe["warmup"]) == (4, pytest.approx(2e-4), 50)
    assert recipe["ema_decay"] == pytest.approx(0.998)  # the EMA and warm-up span the same faces
    assert {"model.safetensors", "model.json", "profile.json", "stage.json"} <= {f.name for f in (stage / "liif-a").iterdir()}
    assert list(stage.glob("liif-a/logs/*/metrics.csv"))

    r = subprocess.run([*common, "--budget-s", "60", "--eval-stage", str(stage), "--out", str(second)],
                       env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    model = json.loads((second / "session.json").read_text())["models"]["liif-a"]
    assert model["iterations"] == trained["iterations"] and model["device_seconds"] == trained["device_seconds"]
    assert model["trained_in"] == summary["started"] and model["verdict"]["rows"]
    with tarfile.open(second / "liif-a.tar") as tar:
        assert {"liif-a.safetensors", "eval/results.json", "metrics.csv"} <= set(tar.getnames())
        card = json.loads(tar.extractfile("liif-a.json").read())
    assert len(card["sessions"]) == 1 and card["sessions"][0]["trained_in"] == summary["started"]
    ship = [sys.executable, "-m", "tools.device_session", "--weights-dir", str(weights),
            "--results-dir", str(tmp_path / "results"), "--ship-all", "--ship"]
    r = subprocess.run([*ship, str(second)], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((weights / "liif-a.json").read_text())["sessions"][0]["trained_in"] == summary["started"]
    assert list((tmp_path / "results" / "eval" / "sessions").glob("*-liif-a/results.json"))
    r = subprocess.run([sys.executable, "-m", "tools.device_session", "--no-eval",
                        "--models", "liif-a", "--weights-dir", str(weights)], env=_env(), capture_output=True, text=True)
    assert r.returncode != 0 and "--stage" in r.stderr  # training that nothing keeps is refused


def test_dry_run_prints_the_plan(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.device_session", "--dry",
                        "--models", "arasfsr,arasfsr-a,liif-a", "--out", str(tmp_path / "out")],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "paper/P-arasfsr" in r.stdout and "paper/A-liif" in r.stdout and "resumes" in r.stdout
    assert not (tmp_path / "out").exists()  # the plan alone writes nothing
    with pytest.raises(SystemExit, match="no such shipped model"):
        device_session.plan_models(["nope"], [1.0], None, None)


def test_benchmark_runs_its_variants_with_todays_trainer_as_the_baseline(face_data, tmp_path):
    """Issue 9's benchmark on a CPU: each variant is one training run; today's is the gathered
    query on the workers path, device-gathered isolates the projected query."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "tools.device_session", "--benchmark",
                        "--devdata", str(tmp_path / "no-shards"), "--data-root", str(face_data), "--out", str(out),
                        "--benchmark-configs", "smoke/A-arasfsr", "--benchmark-variants", "today,device,device-gathered",
                        "--benchmark-iterations", "8", "--baseline-iterations", "8"],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads((out / "benchmark-smoke-A-arasfsr.json").read_text())["results"]}
    assert set(rows) == {"today", "device", "device-gathered"}
    assert "train.query=gathered" in rows["today"]["overrides"] and "data.pipeline=workers" in rows["today"]["overrides"]
    assert "train.query=gathered" in rows["device-gathered"]["overrides"]
    assert not any(o.startswith("train.query") for o in rows["device"]["overrides"])  # the default: projected
    assert all(row["iterations"] == 8 and row["profile"]["steps"] > 0 for row in rows.values())
