"""Inputs read for what they are: floating-point and wide-integer grayscale by their range,
NaN refused, a file that may not be read and a PNG over Pillow's metadata limit named as such."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from cli_helpers import image, run, without_read_access


@pytest.mark.parametrize("mode, values, note", [
    ("F", lambda a: a.astype(np.float32) / 255, "values 0..1"),
    ("F", lambda a: a.astype(np.float32), "values 0..255"),
    ("I", lambda a: a.astype(np.int32), "values 0..255"),
    ("I", lambda a: a.astype(np.int32) * 257, "0..65535"),
    ("I;16", lambda a: a.astype(np.uint16) * 257, "16-bit"),
])
def test_high_depth_grayscale_keeps_its_brightness(capsys, tmp_path, mode, values, note):
    grey = np.random.default_rng(0).integers(20, 236, (24, 20)).astype(np.uint8)
    src = tmp_path / "in.tif"
    Image.fromarray(values(grey), mode=mode).save(src)
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "out.png", "--scale", "2", "--model", "bicubic")
    assert code == 0 and note in err
    out = np.asarray(Image.open(tmp_path / "out.png"), np.float64)
    assert abs(out.mean() - grey.mean()) < 1.0  # a 0..1 float image came out black before


def test_nan_in_a_float_image_is_one_line(capsys, tmp_path):
    arr = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    arr[3, 4] = np.nan
    Image.fromarray(arr, mode="F").save(tmp_path / "nan.tif")
    code, _, err = run(capsys, "upscale", tmp_path / "nan.tif", "-o", tmp_path / "out.png", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and err.count("\n") == 1 and "1 NaN or infinite value" in err
    assert not (tmp_path / "out.png").exists()


def test_a_file_that_cannot_be_read_says_permission_denied(tmp_path):
    src = image(tmp_path / "secret.png")
    src.chmod(0)
    proc = without_read_access(["upscale", src, "-o", tmp_path / "out.png", "--scale", "2", "--model", "bicubic"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"arasfsr: error: {src}: cannot read this file: permission denied"


def test_a_png_over_pillows_text_limit_says_so(capsys, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10), zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "meta.png", pnginfo=info)
    code, _, err = run(capsys, "upscale", tmp_path / "meta.png", "-o", tmp_path / "out.png", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and "PNG metadata (text chunks or colour profile) is larger than Pillow's safety limit" in err
    assert "damaged" not in err
