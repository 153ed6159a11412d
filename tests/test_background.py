"""The background trainer (tools/background.py): a run killed with SIGKILL and started again
resumes exactly; finish stops it, scores it on val and ships it only when it is better, with
the card's totals accumulated."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arasfsr.checkpoint import read_card
from arasfsr.training import train
from tools import background

RUN_SETS = ["train.iterations=12", "data.limit=6", "val.count=2"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shipped(face_data, tmp_path) -> Path:
    """A weights folder whose `arasfsr` is a smoke-tier model of protocol P, as if shipped."""
    base = train("smoke/P-arasfsr", out=tmp_path / "base", data_root=face_data,
                 overrides=["train.iterations=2", "train.val_every=2", "data.limit=6"], command="base")
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copyfile(base, weights / "arasfsr.safetensors")
    shutil.copyfile(base.with_suffix(".json"), weights / "arasfsr.json")
    return weights


def _cli(face_data: Path, tmp_path: Path, weights: Path, action: str, *more: str) -> int:
    common = ["--sessions", str(tmp_path / "sessions")]
    if action == "start":
        common += ["--weights-dir", str(weights), "--data-root", str(face_data), "--threads", "1",
                   "--checkpoint-min", "0.0001", *[f"--set={s}" for s in RUN_SETS]]
    return background.main([action, *common, *more])


def _wait(predicate, seconds: float = 300.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_run_resumes_exactly_and_finish_scores_it(face_data, tmp_path, shipped, capsys):
    folder = tmp_path / "sessions" / "arasfsr"
    assert _cli(face_data, tmp_path, shipped, "start") == 0
    session = json.loads((folder / "session.json").read_text())
    assert session["config"] == "smoke/P-arasfsr" and session["schedule"] == "constant"
    ckpt = folder / "run" / "checkpoints" / "last.safetensors"
    assert _wait(ckpt.is_file), (folder / "train.log").read_text()[-2000:]
    os.killpg(session["pid"], signal.SIGKILL)
    assert _wait(lambda: not background.alive(session["pid"]), 30)
    assert not (folder / "run" / "model.safetensors").exists()

    assert _cli(face_data, tmp_path, shipped, "start") == 0  # resumes from the checkpoint
    session = json.loads((folder / "session.json").read_text())
    assert len(session["resumes"]) == 1
    assert _wait(lambda: not background.alive(session["pid"]))
    resumed = load_file(str(folder / "run" / "model.safetensors"))
    # The same run without the kill.
    ref = train(session["config"], out=tmp_path / "ref", data_root=face_data, init=shipped / "arasfsr.safetensors",
                overrides=session["sets"])
    reference = load_file(str(ref))
    assert resumed.keys() == reference.keys()
    for key in resumed:
        assert torch.allclose(resumed[key], reference[key], atol=1e-6, rtol=0), key

    before = (shipped / "arasfsr.safetensors").read_bytes()
    assert _cli(face_data, tmp_path, shipped, "finish", "--eval-limit", "1", "--eval-threads", "1",
                "--results-dir", str(tmp_path / "results")) == 0
    done = json.loads(next((tmp_path / "sessions").glob("arasfsr-*/finished.json")).read_text())
    assert done["iterations"] == 12 and done["samples"] == 12 * 2 and done["resumes"] == 1
    assert done["val_rows"] and all(r["row"].startswith("utkface/val") for r in done["val_rows"])
    assert done["full_test_16_128"]["row"].startswith("utkface/test") and done["full_test_16_128"]["faces"] == 1
    # Shipped exactly when val improved.
    assert ((shipped / "arasfsr.safetensors").read_bytes() != before) == done["shipped"] == done["val"]["improved"]
    assert not folder.exists()  # kept under a stamped name; the next start begins afresh
    assert "val mean PSNR" in capsys.readouterr().out


@pytest.mark.parametrize("improved", [True, False])
def test_finish_ships_only_when_better_and_totals_accumulate(face_data, tmp_path, shipped, monkeypatch, improved):
    folder = tmp_path / "sessions" / "arasfsr"
    assert _cli(face_data, tmp_path, shipped, "start") == 0
    pid = json.loads((folder / "session.json").read_text())["pid"]
    assert _wait(lambda: not background.alive(pid))  # a 12-step run ends by itself
    row = {"row": "x", "faces": 1, "bicubic": 20.0, "shipped": 21.0, "new": 21.5 if improved else 20.5,
           "delta": 0.5 if improved else -0.5, "margin_new": 1.5, "margin_shipped": 1.0}
    verdict = {"rows": [row], "mean_shipped": 21.0, "mean_new": row["new"], "mean_delta": row["delta"],
               "improved": improved}
    monkeypatch.setattr(background, "evaluate", lambda *a, **k: {"val": verdict, "test": row, "eval_seconds": 1.0})
    old_card = read_card(shipped / "arasfsr.safetensors")
    before = (shipped / "arasfsr.safetensors").read_bytes()
    assert _cli(face_data, tmp_path, shipped, "finish", "--results-dir", str(tmp_path / "results")) == 0
    card = read_card(shipped / "arasfsr.safetensors")
    if not improved:
        assert (shipped / "arasfsr.safetensors").read_bytes() == before and card == old_card
        return
    assert (shipped / "arasfsr.safetensors").read_bytes() != before
    session = card["sessions"][-1]
    assert session["device"] == "cpu" and session["schedule"] == "constant" and session["samples"] == 24
    assert session["val"]["improved"] and session["cpu_seconds"] > 0
    totals = card["totals"]
    assert totals["samples"] == old_card["totals"]["samples"] + 24
    assert totals["cpu_seconds"] == session["cpu_seconds"]
    assert totals["by_machine"][session["machine"]]["samples"] == 24
    assert sum(m["samples"] for m in totals["by_machine"].values()) == totals["samples"]


def test_a_new_model_starts_from_another_and_ships_under_its_own_name(face_data, tmp_path, shipped, monkeypatch):
    """--init-from: a model that does not ship yet (here a protocol-C model) trains from the
    default's weights in its own config and, when better than them, ships under its own name."""
    folder = tmp_path / "sessions" / "arasfsr-c"
    assert _cli(face_data, tmp_path, shipped, "start", "--model", "arasfsr-c", "--init-from", "arasfsr",
                "--config", "smoke/C-arasfsr", "--description", "for NN-JPEG faces") == 0
    session = json.loads((folder / "session.json").read_text())
    assert session["protocol"] == "C" and session["weights"].endswith("arasfsr.safetensors")
    assert _wait(lambda: not background.alive(session["pid"]))
    row = {"row": "x", "faces": 1, "bicubic": 20.0, "shipped": 21.0, "new": 21.5, "delta": 0.5,
           "margin_new": 1.5, "margin_shipped": 1.0}
    verdict = {"rows": [row], "mean_shipped": 21.0, "mean_new": 21.5, "mean_delta": 0.5, "improved": True}
    monkeypatch.setattr(background, "evaluate", lambda *a, **k: {"val": verdict, "test": row, "eval_seconds": 1.0})
    assert background.main(["finish", "--model", "arasfsr-c", "--sessions", str(tmp_path / "sessions"),
                            "--results-dir", str(tmp_path / "results")]) == 0
    card = read_card(shipped / "arasfsr-c.safetensors")
    source = read_card(shipped / "arasfsr.safetensors")
    assert card["name"] == "arasfsr-c" and card["description"] == "for NN-JPEG faces" and card["protocol"] == "C"
    assert card["totals"]["samples"] == source["totals"]["samples"] + 24


def test_finish_scores_only_the_new_weights_when_the_shipped_ones_were_scored(face_data, tmp_path, shipped,
                                                                             monkeypatch):
    """The shipped weights are usually the last session's new ones: their kept scores stand in
    for evaluating them again, and give the same verdict as evaluating them."""
    import argparse
    import subprocess

    from arasfsr.checkpoint import load_checkpoint, save_checkpoint

    model = load_checkpoint(shipped / "arasfsr.safetensors")
    versions = []
    for k in range(3):
        with torch.no_grad():
            next(model.parameters()).add_(0.01 * (k + 1))
        save_checkpoint(model, tmp_path / f"v{k}.safetensors", card=read_card(shipped / "arasfsr.safetensors"))
        versions.append(tmp_path / f"v{k}.safetensors")
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(background.subprocess, "run", lambda cmd, **kw: (calls.append(cmd), real_run(cmd, **kw))[1])
    session = {"protocol": "P", "data_root": str(face_data), "tier": "smoke"}
    args = argparse.Namespace(sessions=str(tmp_path / "sessions"), eval_limit=1, eval_threads=1)

    def finish_of(old: Path, new: Path, out: Path) -> dict:
        out.mkdir()
        shutil.copyfile(old, out / "arasfsr-shipped.safetensors")
        shutil.copyfile(new, out / "arasfsr-new.safetensors")
        return background.evaluate(session, out / "arasfsr-shipped.safetensors", out / "arasfsr-new.safetensors",
                                   out, args)

    first = finish_of(versions[0], versions[1], tmp_path / "e1")
    assert all(any("arasfsr-shipped" in str(c) for c in cmd) for cmd in calls)
    calls.clear()
    second = finish_of(versions[1], versions[2], tmp_path / "e2")  # v1 shipped after the first
    assert len(calls) == 2 and not any("arasfsr-shipped" in str(c) for cmd in calls for c in cmd)
    assert second["val"]["mean_shipped"] == first["val"]["mean_new"]
    assert second["test"]["shipped"] == first["test"]["new"] and second["test"]["bicubic"] == first["test"]["bicubic"]
    calls.clear()
    third = finish_of(versions[1], versions[2], tmp_path / "e3")  # the same pair: the same verdict
    assert third["val"] == second["val"] and third["test"] == second["test"]
    args.sessions = str(tmp_path / "none")
    calls.clear()
    again = finish_of(versions[1], versions[2], tmp_path / "e4")  # nothing kept: both evaluated
    assert all(any("arasfsr-shipped" in str(c) for c in cmd) for cmd in calls)
    assert again["val"]["mean_shipped"] == second["val"]["mean_shipped"]
    assert again["val"]["mean_new"] == second["val"]["mean_new"] and again["val"]["rows"] == second["val"]["rows"]


@pytest.mark.parametrize("blotchier", [True, False])
def test_a_model_for_real_photos_ships_only_if_they_get_no_blotchier(face_data, tmp_path, shipped, monkeypatch,
                                                                      blotchier):
    """For a protocol-R model, better on val is not enough: the mean blotch score on realworld/
    must not rise (measured on the data's realworld/ faces)."""
    folder = tmp_path / "sessions" / "arasfsr"
    assert _cli(face_data, tmp_path, shipped, "start") == 0
    pid = json.loads((folder / "session.json").read_text())["pid"]
    assert _wait(lambda: not background.alive(pid))
    row = {"row": "x", "faces": 1, "bicubic": 20.0, "shipped": 21.0, "new": 21.5, "delta": 0.5,
           "margin_new": 1.5, "margin_shipped": 1.0}
    verdict = {"rows": [row], "mean_shipped": 21.0, "mean_new": 21.5, "mean_delta": 0.5, "improved": True}
    monkeypatch.setattr(background, "evaluate", lambda *a, **k: {"val": verdict, "test": row, "eval_seconds": 1.0})
    monkeypatch.setattr(background, "REAL_PHOTO_PROTOCOLS", ("P",))  # the smoke model here is protocol P
    real_check = background.realworld_check
    measured = real_check(json.loads((folder / "session.json").read_text()), shipped / "arasfsr.safetensors",
                          shipped / "arasfsr.safetensors")
    assert measured["faces"] == 2 and measured["shipped"] == measured["new"] > 0  # same weights, same score
    monkeypatch.setattr(background, "realworld_check", lambda *a: {
        "faces": 2, "shipped": 1.0, "new": 1.2 if blotchier else 0.9})
    before = (shipped / "arasfsr.safetensors").read_bytes()
    assert _cli(face_data, tmp_path, shipped, "finish", "--results-dir", str(tmp_path / "results")) == 0
    done = json.loads(next((tmp_path / "sessions").glob("arasfsr-*/finished.json")).read_text())
    assert done["realworld_blotch"]["new"] == (1.2 if blotchier else 0.9)
    assert done["shipped"] is (not blotchier)
    assert ((shipped / "arasfsr.safetensors").read_bytes() == before) is blotchier


def test_status_scores_the_last_checkpoint_without_ending_the_run(face_data, tmp_path, shipped, capsys):
    """`status --blotch` scores the running session's checkpoint on realworld/ as finish would,
    and leaves no model.safetensors in the run (that file tells finish the run has ended)."""
    folder = tmp_path / "sessions" / "arasfsr"
    assert _cli(face_data, tmp_path, shipped, "start") == 0
    pid = json.loads((folder / "session.json").read_text())["pid"]
    assert _wait(lambda: not background.alive(pid))
    exported = load_file(str(folder / "run" / "model.safetensors"))
    (folder / "run" / "model.safetensors").unlink()  # as it is mid-run: a checkpoint, no export
    # The checkpoint's weights as the run exports them: its EMA, not the raw weights.
    from tools.train_all import export_last

    assert export_last(folder / "run", tmp_path / "again.safetensors")
    again = load_file(str(tmp_path / "again.safetensors"))
    assert again.keys() == exported.keys() and all(torch.equal(again[k], exported[k]) for k in again)
    capsys.readouterr()
    assert _cli(face_data, tmp_path, shipped, "status", "--blotch") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "stopped (start resumes it)"
    assert report["blotch"]["step"] == 12 and report["blotch"]["faces"] == 2
    assert report["blotch"]["shipped"] > 0 and report["blotch"]["checkpoint"] > 0
    assert report["blotch"]["checkpoint"] != report["blotch"]["shipped"]  # 12 steps changed the weights
    assert not (folder / "run" / "model.safetensors").exists()
