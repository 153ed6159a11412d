"""Honest outputs: bicubic (said in one line) where the model adds no detail, progress for
one large render, a note for a plain downscale, the files --uncertainty adds, readable
labels on large side-by-side pictures."""

from __future__ import annotations

import numpy as np
from PIL import Image

import arasfsr
from cli_helpers import image, run


def test_a_large_input_gets_bicubic_unless_forced(tiny, capsys, monkeypatch):
    from arasfsr.runtime import MODEL_DETAIL_SIDE

    up = arasfsr.load_model(tiny)
    side = MODEL_DETAIL_SIDE + 1
    arr = np.random.default_rng(0).integers(0, 256, (side, side + 3, 3), np.uint8)
    expected = arasfsr.load_model("bicubic").upscale(arr, scale=1.5)
    ran = []
    monkeypatch.setattr(up, "network", lambda lr, size, chunk=None: ran.append(size) or lr.new_zeros(1, 3, *size))
    assert np.array_equal(up.upscale(arr, scale=1.5), expected) and not ran
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adds no detail over bicubic, so bicubic was used" in err
    up.with_settings(force_model=True).upscale(arr, scale=1.5)
    assert ran  # forced: the model runs


def test_the_cli_says_what_it_did_for_large_and_shrinking_inputs(capsys, tmp_path, tiny):
    from arasfsr.runtime import MODEL_DETAIL_SIDE

    big = image(tmp_path / "big.png", size=(MODEL_DETAIL_SIDE + 20,) * 2)
    code, _, err = run(capsys, "upscale", big, "-o", tmp_path / "x2.png", "--scale", "2", "--model", tiny)
    assert code == 0 and "so bicubic was used (--force-model" in err
    code, _, err = run(capsys, "upscale", big, "-o", tmp_path / "small.png", "--size", "100x90", "--model", tiny)
    assert code == 0 and "a plain bicubic downscale, without the model" in err


def test_a_single_large_render_shows_its_progress(capsys, tmp_path, tiny):
    src = image(tmp_path / "face.png", size=(64, 64))
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "out.png", "--size", "1100x1000", "--model", tiny,
                       "--chunk-size", "65536")
    assert code == 0 and "render:" in err and "px/s" in err


def test_uncertainty_prints_the_files_it_adds(capsys, tmp_path, tiny):
    src = image(tmp_path / "face.png", size=(16, 16))
    code, out, _ = run(capsys, "upscale", src, "-o", tmp_path / "out.png", "--scale", "2", "--model", tiny,
                       "--uncertainty")
    assert code == 0
    assert out.split() == [str(tmp_path / n) for n in ("out.png", "out_uncertainty.png", "out_uncertainty.npy")]


def test_side_by_side_labels_grow_with_the_picture():
    from arasfsr.demo import side_by_side

    def label_rows(height: int) -> int:
        pic = side_by_side([("input", Image.new("RGB", (height, height), "white"))] * 3, height)
        ink = np.asarray(pic.convert("L"))[:pic.height - height] < 128
        rows = np.nonzero(ink.any(axis=1))[0]
        return int(rows.max() - rows.min() + 1)

    small, large = label_rows(200), label_rows(2400)
    assert small <= 12 and large >= 2400 / 40 * 0.6  # about a 40th of the height
