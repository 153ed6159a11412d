"""Runs over many inputs: the report is always written (nothing to do, everything failing,
SIGTERM, SIGHUP, a full disk), outputs another run writes meanwhile are skipped, unreadable
sub-folders and over-long side outputs are found before any work, and a training that
fails on bad data leaves no run folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import arasfsr.api
import arasfsr.atomic
from cli_helpers import ROOT, default_stop_signals, image, report_of, run, without_read_access


def report_of(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_rerun_with_nothing_left_to_do_writes_its_report(capsys, tmp_path):
    image(tmp_path / "in" / "a.png")
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert run(capsys, "upscale", tmp_path / "in", "--out-dir", out, "--scale", "2", "--model", "bicubic")[0] == 0
    code, _, _ = run(capsys, "upscale", tmp_path / "in", "--out-dir", out, "--scale", "2", "--model", "bicubic",
                     "--skip-existing", "--report", report)
    assert code == 0
    data = report_of(report)
    assert (data["state"], data["skipped"], data["ok"]) == ("finished", 1, 0)


def test_inputs_that_all_fail_at_the_header_check_are_reported(capsys, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "in" / name).write_bytes(b"not an image")
    report = tmp_path / "r.json"
    code, _, _ = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                     "--model", "bicubic", "--continue-on-error", "--report", report)
    assert code == 3 and report_of(report)["failed"] == 2
    code, _, _ = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                     "--model", "bicubic", "--report", report)
    assert code == 2
    data = report_of(report)
    assert data["state"] == "stopped" and "not an image" in data["error"] and data["failed"] == 1


def test_a_refused_run_replaces_a_stale_report_and_nothing_else(capsys, tmp_path):
    image(tmp_path / "in" / "a.png")
    report = tmp_path / "r.json"
    assert run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2", "--model",
               "bicubic", "--report", report)[0] == 0
    assert report_of(report)["ok"] == 1
    code, _, _ = run(capsys, "upscale", tmp_path / "missing", "--out-dir", tmp_path / "out", "--scale", "2",
                     "--model", "bicubic", "--report", report)
    assert code == 2
    data = report_of(report)
    assert data["state"] == "refused" and "no such file" in data["error"] and data["items"] == []
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')  # a file that is not a report of ours is never replaced
    run(capsys, "upscale", tmp_path / "missing", "--out-dir", tmp_path / "out", "--scale", "2", "--report", notes)
    assert notes.read_text() == '{"mine": 1}'


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_leave_a_report_of_what_was_done(tmp_path, tiny, signum):
    for i in range(60):
        image(tmp_path / "in" / f"f{i:02d}.png", size=(64, 64), seed=i)
    report, out = tmp_path / "r.json", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "arasfsr.cli", "upscale", str(tmp_path / "in"), "--out-dir",
                             str(out), "--scale", "8", "--model", tiny, "--report", str(report)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_stop_signals)
    while not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())):  # the run is under way
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    data = report_of(report)
    done = sorted(p.name for p in out.iterdir())
    assert data["state"] == "interrupted" and data["ok"] == len(done) >= 1 and data["not_run"] >= 1
    assert not [p for p in done if p.endswith(".part")]


def test_a_full_disk_for_the_report_is_a_clear_error(capsys, tmp_path, monkeypatch):
    import arasfsr.atomic

    image(tmp_path / "in" / "a.png")
    report = tmp_path / "r.json"
    real = arasfsr.atomic.atomic_write_text

    def full(path, text):
        if Path(path) == report:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(arasfsr.atomic, "atomic_write_text", full)
    code, _, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                       "--model", "bicubic", "--report", report)
    assert code == 2 and "internal error" not in err
    assert err.strip().splitlines()[-1] == f"arasfsr: error: --report {report}: cannot write the report (No space left on device)"


def test_an_output_another_run_writes_meanwhile_is_skipped_not_failed(capsys, tmp_path, monkeypatch):
    for i in range(3):
        image(tmp_path / "in" / f"f{i}.png", seed=i)
    out = tmp_path / "out"
    real = arasfsr.api.Upscaler.upscale_many

    def other_run_was_faster(self, images, **kw):
        results = real(self, images, **kw)
        out.mkdir(exist_ok=True)
        (out / "f1.png").write_bytes(b"another run's output")  # written between plan and write
        return results

    monkeypatch.setattr(arasfsr.api.Upscaler, "upscale_many", other_run_was_faster)
    report = tmp_path / "r.json"
    code, outs, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", out, "--scale", "2", "--model", "bicubic",
                          "--skip-existing", "--report", report)
    assert code == 0, err
    data = report_of(report)
    assert (data["ok"], data["skipped"], data["failed"]) == (2, 1, 0)
    assert (out / "f1.png").read_bytes() == b"another run's output"  # never replaced


def test_two_runs_into_one_folder_with_skip_existing_never_fail(tmp_path):
    for i in range(24):
        image(tmp_path / "in" / f"f{i:02d}.png", size=(24, 24), seed=i)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "arasfsr.cli", "upscale", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"),
           "--scale", "4", "--model", "bicubic", "--skip-existing", "--continue-on-error"]
    procs = [subprocess.Popen(cmd + ["--report", str(tmp_path / f"r{k}.json")], env=env, stderr=subprocess.PIPE,
                              text=True) for k in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    reports = [report_of(tmp_path / f"r{k}.json") for k in range(2)]
    assert all(r["failed"] == 0 for r in reports)
    assert sum(r["ok"] for r in reports) == 24 and len(list((tmp_path / "out").iterdir())) == 24


def test_unreadable_sub_folders_are_reported(tmp_path):
    image(tmp_path / "in" / "a.png")
    image(tmp_path / "in" / "locked" / "b.png", seed=1)
    (tmp_path / "in" / "locked").chmod(0)
    try:
        report = tmp_path / "r.json"
        proc = without_read_access(["upscale", tmp_path / "in", "--recursive", "--out-dir", tmp_path / "out",
                                    "--scale", "2", "--model", "bicubic", "--continue-on-error", "--report", report])
        assert proc.returncode == 3, proc.stderr
        failed = [item for item in report_of(report)["items"] if item["status"] == "failed"]
        assert [Path(item["input"]).name for item in failed] == ["locked"]
        assert "cannot read this folder" in failed[0]["message"] and (tmp_path / "out" / "a.png").is_file()
        proc = without_read_access(["upscale", tmp_path / "in", "--recursive", "--out-dir", tmp_path / "out2",
                                    "--scale", "2", "--model", "bicubic"])
        assert proc.returncode == 2 and "locked: cannot read this folder" in proc.stderr
        assert "--continue-on-error" in proc.stderr and not (tmp_path / "out2").exists()
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)


def test_side_output_names_are_checked_before_the_model_runs(capsys, tmp_path, monkeypatch):
    src = image(tmp_path / "in" / (("n" * 240) + ".png"))  # NAME_uncertainty.png would be 256 bytes
    monkeypatch.setattr(arasfsr.api.Upscaler, "render", lambda *a, **k: pytest.fail("the model ran"))
    code, _, err = run(capsys, "upscale", src, "--out-dir", tmp_path / "out", "--scale", "2", "--model", "bicubic",
                       "--uncertainty")
    assert code == 2 and "_uncertainty.png: the file name is 256 bytes long" in err
    assert not (tmp_path / "out").exists()


def test_training_that_fails_on_bad_data_leaves_no_run_folder(capsys, tmp_path, face_data):
    data = tmp_path / "data"
    shutil.copytree(face_data / "utkface", data / "utkface")
    for face in (data / "utkface" / "train").iterdir():
        face.write_bytes(b"not a picture")  # undecodable, found only when training reads it
    out = tmp_path / "runs" / "bad"
    code, _, err = run(capsys, "train", "smoke/A-arasfsr", "--data-root", data, "--out", out, "--num-workers", "0")
    assert code == 2 and "not an image file" in err
    assert not (tmp_path / "runs").exists()
