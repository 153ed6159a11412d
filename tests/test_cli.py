"""The ``arasfsr`` command: its contract and how it refuses bad input.

Most tests call ``arasfsr.cli.main.main`` in-process (fast); a few run the installed command.
Every refusal is checked for: the one-line message, exit status 2, no traceback, nothing
written (no output, no temporary file, no new folder) and the input's bytes unchanged.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import arasfsr
import arasfsr.api
import arasfsr.defaults
import arasfsr.registry
from arasfsr.cli.main import main

W, H = 50, 40  # the test image's size


def pixels(w: int = W, h: int = H, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(pixels()).save(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``, hidden ones included."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def assert_refused(result: tuple[int, str, str], root: Path, before: dict, *words: str) -> str:
    code, out, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arasfsr: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert tree(root) == before, "a refused run wrote, removed or changed a file"
    return lines[0]


# --- the contract ---------------------------------------------------------------------


def test_scale_gives_exactly_rounded_size(capsys, tmp_path, png, tiny):
    out = tmp_path / "big.png"
    code, stdout, err = run(capsys, "upscale", png, "-o", out, "--scale", "3.3", "--model", tiny)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as img:
        assert img.size == (round(W * 3.3), round(H * 3.3)) and img.mode == "RGB"
    # Written through a temporary file, yet with the usual permissions (not mkstemp's 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_scale_sx_x_sy_and_size_w_x_h(capsys, tmp_path, png, tiny):
    assert run(capsys, "upscale", png, "-o", tmp_path / "a.png", "--scale", "2x3", "--model", tiny)[0] == 0
    assert Image.open(tmp_path / "a.png").size == (W * 2, H * 3)  # SX (width) x SY (height), as WxH
    assert run(capsys, "upscale", png, "-o", tmp_path / "b.jpg", "--size", "37x29", "--model", "bicubic")[0] == 0
    with Image.open(tmp_path / "b.jpg") as img:
        assert img.size == (37, 29) and img.format == "JPEG"


def test_sample_z_is_seeded_and_refused_where_there_is_no_z(capsys, tmp_path, png, tiny):
    def upscale(name, *extra):
        return run(capsys, "upscale", png, "-o", tmp_path / name, "--scale", "2", "--model", tiny, *extra)

    for name, extra in [("mean.png", ()), ("a.png", ("--sample-z", "--seed", "3")),
                        ("b.png", ("--sample-z", "--seed", "3")), ("c.png", ("--sample-z", "--seed", "4"))]:
        assert upscale(name, *extra)[0] == 0
    read = lambda name: np.asarray(Image.open(tmp_path / name))  # noqa: E731
    assert np.array_equal(read("a.png"), read("b.png"))
    assert not np.array_equal(read("a.png"), read("c.png")) and not np.array_equal(read("a.png"), read("mean.png"))
    before = tree(tmp_path)
    assert_refused(upscale("d.png", "--seed", "3"), tmp_path, before, "--sample-z")
    assert_refused(upscale("d.png", "--sample-z", "--seed", "-1"), tmp_path, before, "seed")
    assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "d.png", "--scale", "2", "--model", "bicubic",
                       "--sample-z"), tmp_path, before, "latent z")


def test_size_on_a_real_face(capsys, tmp_path, shared_data, tiny):
    face = sorted((shared_data / "utkface" / "test").glob("*.jpg"))[0]
    before = face.read_bytes()
    out = tmp_path / "face.png"
    code, _, err = run(capsys, "upscale", face, "-o", out, "--size", "173x131", "--model", tiny)
    assert code == 0, err
    assert Image.open(out).size == (173, 131)
    assert face.read_bytes() == before


def test_folder_writes_one_output_per_image_with_progress(capsys, tmp_path, tiny):
    src = tmp_path / "faces"
    src.mkdir()
    for i in range(3):
        Image.fromarray(pixels(W + i, H, seed=i)).save(src / f"f{i}.png")
    (src / "notes.txt").write_text("not an image, and not picked up")
    code, stdout, err = run(capsys, "upscale", src, "--out-dir", tmp_path / "out" / "deep",
                            "--scale", "2", "--model", tiny)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "deep").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    for i in range(3):
        assert Image.open(tmp_path / "out" / "deep" / f"f{i}.png").size == (2 * (W + i), 2 * H)
    assert "3/3" in err  # the progress bar
    assert "wrote 3 images" in stdout


def test_models_lists_names_and_shows_a_card(capsys, tiny):
    code, out, _ = run(capsys, "models")
    assert code == 0
    listed = [line[2:].split()[0] for line in out.splitlines()]  # "* " marks the default
    assert listed == list(arasfsr.list_models()) and "bicubic" in listed
    code, out, _ = run(capsys, "models", "--info", "e-arasfsr")
    assert code == 0 and '"arch": "arasfsr"' in out and '"name": "e-arasfsr"' in out
    code, out, _ = run(capsys, "models", "--info", tiny)
    assert code == 0 and '"frequency_width": 8' in out


def test_models_info_unknown_name(capsys, tmp_path):
    code, _, err = run(capsys, "models", "--info", "no-such-model")
    assert code == 2 and err.strip() == "arasfsr: error: unknown model 'no-such-model'; `arasfsr models` lists the names"


def test_demo_writes_results_and_side_by_side(capsys, tmp_path, tiny):
    out = tmp_path / "demo"
    code, stdout, err = run(capsys, "demo", "-o", out, "--model", tiny)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["input.png", "side_by_side.png", "tiny_x2.png", "tiny_x3.5.png", "tiny_x8.png"]
    assert len(stdout.splitlines()) == 5
    lr = Image.open(out / "input.png").size
    for s in (2, 3.5, 8):
        assert Image.open(out / f"tiny_x{s:g}.png").size == (round(lr[0] * s), round(lr[1] * s))
    # input, bicubic, ours, reference side by side: wider than three x8 outputs.
    side = Image.open(out / "side_by_side.png")
    assert side.width > 3 * 8 * lr[0] and side.height >= 8 * lr[1]


def test_demo_without_trained_weights_is_one_clear_line(capsys, tmp_path, monkeypatch):
    # An installation without the shipped weights (an empty weights folder).
    monkeypatch.setattr(arasfsr.registry, "WEIGHTS_DIR", tmp_path / "no-weights")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = assert_refused(run(capsys, "demo", "-o", tmp_path / "demo"), tmp_path, before, "no trained weights")
    assert "--model" in line


# --- bad input ------------------------------------------------------------------------


def test_missing_input(capsys, tmp_path, png):
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, tmp_path / "nope.png", "--out-dir", tmp_path / "o",
                       "--scale", "2", "--model", "bicubic"), tmp_path, before, "nope.png", "no such file")


def test_file_that_is_not_an_image(capsys, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("I am text, not a PNG\n")
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", fake, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic"),
                   tmp_path, before, "fake.png", "not an image")


@pytest.mark.parametrize("fmt,cut", [("PNG", 0.5), ("JPEG", 0.5), ("PNG", -20)])
@pytest.mark.parametrize("lenient", [False, True])
def test_truncated_image(capsys, tmp_path, monkeypatch, fmt, cut, lenient):
    buf = io.BytesIO()
    Image.fromarray(pixels()).save(buf, fmt)
    data = buf.getvalue()
    cut_at = int(len(data) * cut) if cut > 0 else len(data) + cut  # -20: only the PNG's last bytes lost
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:cut_at])
    # Another library may have set Pillow's global "accept truncated images" switch.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient)
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", path, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic"),
                   tmp_path, before, path.name, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient  # the switch is put back


@pytest.mark.parametrize("amount,words", [
    (["--scale", "0"], "positive"),
    (["--scale", "-2"], "positive"),
    (["--scale", "nan"], "positive"),
    (["--scale", "1e400"], "positive"),
    (["--scale", "2x0"], "positive"),
    (["--scale", "2x3x4"], "invalid scale"),
    (["--scale", "four"], "invalid scale"),
    (["--scale", "1e-9"], "empty"),
    (["--scale", "1e308"], "too large"),  # was an OverflowError (exit 1)
    (["--scale", "1e308x1"], "too large"),
    (["--scale", "1000"], "16,777,216"),
    (["--size", "0x10"], "at least 1"),
    (["--size", "-5x10"], "at least 1"),
    (["--size", "173"], "invalid size"),
    (["--size", "10.7x10"], "whole numbers"),
    (["--size", "100000x100000"], "16,777,216"),
    (["--scale", "2", "--size", "9x9"], "not allowed with"),
    (["--scale", "2", "--max-pixels", "0"], "at least 1"),
    (["--scale", "2", "--max-pixels", "-3"], "at least 1"),
    (["--scale", "2", "--chunk-size", "0"], "at least 1"),
])
def test_bad_sizes_and_scales(capsys, tmp_path, png, amount, words):
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "o.png", "--model", "bicubic", *amount),
                   tmp_path, before, words)


def test_restore_refuses_a_huge_scale_before_any_work(capsys, tmp_path, png):
    before = tree(tmp_path)
    assert_refused(run(capsys, "restore", png, "-o", tmp_path / "o.png", "--scale", "1e308", "--model", "bicubic"),
                   tmp_path, before, "too large")


def test_default_pixel_limit_and_max_pixels(capsys, tmp_path, png, monkeypatch):
    out = tmp_path / "o.png"
    before = tree(tmp_path)
    # The documented default: 4096 x 4096 is allowed, one more column is not.
    assert_refused(run(capsys, "upscale", png, "-o", out, "--size", "4097x4096", "--model", "bicubic"),
                   tmp_path, before, "16,777,216", "--max-pixels")
    # --max-pixels lowers the limit ...
    assert_refused(run(capsys, "upscale", png, "-o", out, "--scale", "3", "--max-pixels", "17999",
                       "--model", "bicubic"), tmp_path, before, "150x120", "17,999")
    # ... and raises it above the default (made small here, so the test stays fast).
    monkeypatch.setattr(arasfsr.defaults, "DEFAULT_MAX_PIXELS", 10_000)
    assert_refused(run(capsys, "upscale", png, "-o", out, "--scale", "3", "--model", "bicubic"),
                   tmp_path, before, "10,000")
    code, _, err = run(capsys, "upscale", png, "-o", out, "--scale", "3", "--max-pixels", "18000",
                       "--model", "bicubic")
    assert code == 0, err
    assert Image.open(out).size == (150, 120)


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in arr)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _odd_image(kind: str, path: Path) -> None:
    rgb = Image.fromarray(pixels())
    if kind == "rgb16":
        path.write_bytes(_png16_rgb(pixels().astype(np.uint16) * 257))
    elif kind == "I;16":
        Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)).save(path)
    else:
        {"L": rgb.convert("L"), "RGBA": rgb.convert("RGBA"), "P": rgb.quantize(16), "1": rgb.convert("1"),
         "LA": rgb.convert("LA")}[kind].save(path)


@pytest.mark.parametrize("kind,said,mode", [
    ("L", "grayscale: super-resolved on its luminance, written as grayscale", "L"),
    ("RGBA", "transparency kept", "RGBA"), ("LA", "transparency kept", "LA"),
    ("P", "converted P (palette) to RGB", "RGB"), ("1", "converted 1 (black and white) to 8-bit grayscale", "L"),
    ("I;16", "converted I;16", "L"), ("rgb16", "16-bit channels", "RGB")])
def test_odd_modes_are_converted_and_said(capsys, tmp_path, kind, said, mode, tiny):
    path = tmp_path / "odd.png"
    _odd_image(kind, path)
    before = path.read_bytes()
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "upscale", path, "-o", out, "--scale", "2", "--model", tiny)
    assert code == 0, err
    assert f"arasfsr: {path}: " in err and said in err
    with Image.open(out) as img:
        assert img.mode == mode and img.size == (2 * W, 2 * H)
    assert path.read_bytes() == before


def test_animation_uses_its_first_frame(capsys, tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(pixels(seed=i)).quantize(16) for i in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    code, _, err = run(capsys, "upscale", path, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "first of its 2 frames" in err and Image.open(tmp_path / "o.png").size == (2 * W, 2 * H)


def test_sixteen_bit_keeps_its_brightness(capsys, tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((H, W), 40000, np.uint16)).save(path)
    assert run(capsys, "upscale", path, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic")[0] == 0
    assert abs(np.asarray(Image.open(tmp_path / "o.png")).mean() - 40000 / 257) < 1


def test_exif_orientation_is_respected(capsys, tmp_path, tiny):
    path = tmp_path / "rotated.jpg"
    img = Image.fromarray(pixels())  # stored W x H; tag 6 = shown rotated by 90 degrees
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif)
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "upscale", path, "-o", out, "--scale", "2", "--model", tiny)
    assert code == 0, err
    assert "EXIF orientation 6" in err
    assert Image.open(out).size == (2 * H, 2 * W)


def test_existing_output_needs_overwrite(capsys, tmp_path, png):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "-o", out, "--scale", "2", "--model", "bicubic"),
                   tmp_path, before, "exists", "--overwrite")
    # The same in a folder run, even when only one of its outputs exists.
    (tmp_path / "outs").mkdir()
    (tmp_path / "outs" / "face.png").write_bytes(b"precious too")
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "--out-dir", tmp_path / "outs", "--scale", "2",
                       "--model", "bicubic"), tmp_path, before, "exists")
    code, _, err = run(capsys, "upscale", png, "-o", out, "--scale", "2", "--model", "bicubic", "--overwrite")
    assert code == 0, err
    assert Image.open(out).size == (2 * W, 2 * H)


def test_output_cannot_replace_its_input(capsys, tmp_path, png):
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "-o", png, "--scale", "2", "--model", "bicubic", "--overwrite"),
                   tmp_path, before, "replace its input")


@pytest.mark.parametrize("where", ["file-parent-o", "file-parent-dir", "proc"])
def test_output_that_cannot_be_written(capsys, tmp_path, png, where):
    # Tests may run as root, where chmod does not stop writes: use places nobody can write.
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    dest = {"file-parent-o": ["-o", blocker / "o.png"],
            "file-parent-dir": ["--out-dir", blocker / "sub"],
            "proc": ["--out-dir", "/proc/arasfsr-cannot-write-here"]}[where]
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, *dest, "--scale", "2", "--model", "bicubic"),
                   tmp_path, before, "cannot write")


def test_unknown_output_format(capsys, tmp_path, png):
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "o.xyz", "--scale", "2", "--model", "bicubic"),
                   tmp_path, before, "unknown output format")


def _folder(tmp_path: Path, n: int = 3) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        Image.fromarray(pixels(seed=i)).save(src / f"f{i}.png")
    return src


def _fail_on_second_save(monkeypatch, error: Exception) -> None:
    real_save = Image.Image.save
    calls = []

    def save(self, fp, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"half an image")  # as a real failure would: some bytes already out
            raise error
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def test_failure_in_a_folder_run_leaves_no_half_file(capsys, tmp_path, monkeypatch):
    src = _folder(tmp_path)
    inputs = tree(src)
    _fail_on_second_save(monkeypatch, OSError(28, "No space left on device"))
    code, _, err = run(capsys, "upscale", src, "--out-dir", tmp_path / "out", "--scale", "2", "--model", "bicubic")
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("arasfsr: error: ") and "No space left" in line and "1 of 3 outputs" in line
    # The first output is whole, the second was never renamed into place, no temporary file is left.
    assert sorted(os.listdir(tmp_path / "out")) == ["f0.png"]
    assert Image.open(tmp_path / "out" / "f0.png").size == (2 * W, 2 * H)
    assert tree(src) == inputs


def test_bug_in_a_folder_run_leaves_no_half_file_and_says_bug(capsys, tmp_path, monkeypatch):
    src = _folder(tmp_path)
    _fail_on_second_save(monkeypatch, RuntimeError("something nobody expected"))
    code, _, err = run(capsys, "upscale", src, "--out-dir", tmp_path / "out", "--scale", "2", "--model", "bicubic")
    assert code == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "bug" in line and "ARASFSR_DEBUG=1" in line and "something nobody expected" in line
    assert sorted(os.listdir(tmp_path / "out")) == ["f0.png"]


def test_debug_env_shows_the_traceback(capsys, tmp_path, png, monkeypatch):
    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(arasfsr.api.Upscaler, "upscale_many", broken)
    before = tree(tmp_path)
    args = ("upscale", png, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic")
    code, _, err = run(capsys, *args)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("ARASFSR_DEBUG", "1")
    code, _, err = run(capsys, *args)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError: deep inside" in err
    assert tree(tmp_path) == before  # and the folder it was to write into is as it was


def test_out_of_memory_is_a_user_problem(capsys, tmp_path, png, monkeypatch):
    def oom(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(arasfsr.api.Upscaler, "upscale_many", oom)
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "--out-dir", tmp_path / "new", "--scale", "2",
                       "--model", "bicubic"), tmp_path, before, "out of memory", "smaller output", "--device cpu")


@pytest.mark.parametrize("argv,words", [
    ([], "required"),
    (["upscale"], "required"),
    (["upscale", "x.png", "--scale", "2"], "-o"),
    (["upscale", "x.png", "-o", "a.png", "--out-dir", "d", "--scale", "2"], "not allowed with"),
    (["upscale", "x.png", "-o", "a.png", "--scale", "2", "--device", "tpu"], "invalid choice"),
    (["upscale", "x.png", "-o", "a.png", "--scale", "2", "--bogus"], "unrecognized"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert_refused(run(capsys, *argv), tmp_path, tree(tmp_path), words)


@pytest.mark.parametrize("argv", [
    ["eval", "--protocol", "A", "--out", "r", "--limit", "0"],
    ["eval", "--protocol", "A", "--out", "r", "--batch-size", "-1"],
    ["eval", "--protocol", "A", "--out", "r", "--limit", "2.5"],
    ["compare", "--faces", "f.png", "--out", "g.png", "--lr", "0"],
    ["compare", "--faces", "f.png", "--out", "g.png", "--hr", "-8"],
    ["align", "f.png", "--out-dir", "d", "--size", "0"],
    ["restore", "f.png", "-o", "o.png", "--scale", "2", "--chunk-size", "0"],
    ["train", "smoke/A-arasfsr", "--devices", "0"],
    ["train", "smoke/A-arasfsr", "--num-workers", "-1"],
])
def test_every_integer_option_wants_a_whole_number(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert_refused(run(capsys, *argv), tmp_path, tree(tmp_path), "whole number of at least")


def test_precision_means_the_decoder_everywhere_and_train_has_its_own(capsys, tmp_path, monkeypatch):
    from arasfsr.cli.main import build_parser
    from arasfsr.cli.train import retrain_command

    monkeypatch.chdir(tmp_path)
    for command in ("upscale", "restore", "demo", "eval", "compare"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "--precision {auto,fp32,bf16}" in out and "implicit decoder precision" in out
        assert ("--engine {torch,onnx}" in out) == (command in ("upscale", "restore", "demo"))
    assert_refused(run(capsys, "train", "smoke/A-arasfsr", "--precision", "bf16-mixed"), tmp_path, tree(tmp_path),
                   "--trainer-precision since arasfsr 0.2.0")
    argv = ["train", "smoke/A-arasfsr", "--trainer-precision", "bf16-mixed", "--devices", "1", "--num-workers", "0"]
    args = build_parser().parse_args(argv)
    command = retrain_command(args)
    assert command == "arasfsr train smoke/A-arasfsr --devices 1 --trainer-precision bf16-mixed --num-workers 0"
    assert vars(build_parser().parse_args(command.split()[1:])) == vars(args)  # it parses back


def test_several_inputs_need_out_dir(capsys, tmp_path, png):
    other = tmp_path / "other.png"
    shutil.copy(png, other)
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, other, "-o", tmp_path / "o.png", "--scale", "2",
                       "--model", "bicubic"), tmp_path, before, "--out-dir")


def test_unknown_model_and_missing_cuda(capsys, tmp_path, png):
    before = tree(tmp_path)
    assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "o.png", "--scale", "2", "--model", "nope"),
                   tmp_path, before, "unknown model")
    assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "o.png", "--scale", "2",
                       "--model", tmp_path / "missing.safetensors"), tmp_path, before, "no such checkpoint")
    if not torch.cuda.is_available():
        assert_refused(run(capsys, "upscale", png, "-o", tmp_path / "o.png", "--scale", "2",
                           "--model", "bicubic", "--device", "cuda"), tmp_path, before, "CUDA")


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "upscale", "--help")
    assert code == 0 and "--max-pixels" in out and "SXxSY" in out


def test_help_and_usage_errors_do_not_import_torch(tmp_path):
    """``--help`` of every sub-command and usage errors stay instant: torch is not imported."""
    env = {**os.environ, "PYTHONPATH": str(Path(arasfsr.__file__).resolve().parents[1])}
    probe = """
import contextlib, io, json, sys
from arasfsr.cli.main import build_parser, main
commands = list(build_parser()._subparsers._group_actions[0].choices)
heavy = lambda: [m for m in ("torch", "lightning", "onnxruntime", "gradio", "numpy", "PIL") if m in sys.modules]
runs = [["--help"], ["--version"], ["upscale", "x.png"], ["upscale", "x.png", "-o", "y.png", "--scale", "0"],
        ["train"], ["eval", "--out", "r"]] + [[c, "--help"] for c in commands]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main(argv) for argv in runs]
print(json.dumps({"commands": commands, "codes": codes, "heavy": heavy()}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {"upscale", "export", "models", "demo", "eval", "compare", "align", "restore", "train",
            "ui"} <= set(seen["commands"])
    assert seen["codes"] == [0, 0, 2, 2, 2, 2] + [0] * len(seen["commands"])
    assert seen["heavy"] == []  # eval and compare list the protocols and degradations without them
    # A choice read from the library is still checked.
    done = subprocess.run([sys.executable, "-m", "arasfsr", "eval", "--protocol", "Z", "--out", "r"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'Z' (choose from 'A', 'B'" in done.stderr
    # The real entry point, as the user starts it.
    for argv, loaded in ((["--help"], "arasfsr.cli.main"), (["eval", "--help"], "arasfsr.protocols")):
        timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "arasfsr", *argv], capture_output=True,
                               text=True, env=env, timeout=120)
        assert timed.returncode == 0 and "usage: arasfsr" in timed.stdout
        imported = {line.split("|")[-1].strip() for line in timed.stderr.splitlines()
                    if line.startswith("import time:")}
        assert loaded in imported and not {"torch", "numpy", "PIL"} & imported, argv


# --- the installed command ------------------------------------------------------------


def test_console_script_end_to_end(tmp_path, png):
    """The real ``arasfsr`` command, then ``python -m arasfsr`` on bad input, in fresh processes."""
    env = {**os.environ, "PYTHONPATH": str(Path(arasfsr.__file__).resolve().parents[1])}
    script = Path(sys.executable).with_name("arasfsr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "arasfsr.cli"]
    out = tmp_path / "o.png"
    done = subprocess.run([*command, "upscale", str(png), "-o", str(out), "--scale", "1.5", "--model", "bicubic"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and Image.open(out).size == (75, 60)
    bad = subprocess.run([sys.executable, "-m", "arasfsr", "upscale", str(tmp_path / "missing.png"),
                          "-o", str(tmp_path / "x.png"), "--scale", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == f"arasfsr: error: {tmp_path / 'missing.png'}: no such file or folder\n"


def test_restore_and_video_default_to_the_shipped_face_model():
    from arasfsr.cli.main import build_parser
    from arasfsr.registry import resolve

    parser = build_parser()
    for argv in (["restore", "in.jpg", "-o", "out.png", "--scale", "2"],
                 ["video", "in.mp4", "-o", "out.mp4", "--scale", "2"]):
        assert parser.parse_args(argv).model == arasfsr.defaults.DEFAULT_FACE_MODEL == "arasfsr-real"
    assert parser.parse_args(["upscale", "in.png", "-o", "out.png", "--scale", "2"]).model == arasfsr.defaults.DEFAULT_MODEL
    entry = resolve(arasfsr.defaults.DEFAULT_FACE_MODEL)
    assert entry.trained and entry.weights.parent == arasfsr.registry.WEIGHTS_DIR  # in every installation
