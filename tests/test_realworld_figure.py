"""tools/realworld_figure.py: the real-size estimate, the blotch score, the rows it picks,
and a figure of the synthetic realworld/ faces at 100 %."""

import sys

import numpy as np
from PIL import Image, ImageFilter

from tools import realworld_figure as fig


def test_real_size_finds_the_size_a_picture_was_made_at():
    rng = np.random.default_rng(0)
    for side in (32, 48, 64):  # detail at every scale up to the picture's own (white noise at its
        small = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))  # Nyquist would
        small = small.filter(ImageFilter.GaussianBlur(1))  # outlast any bicubic round trip)
        assert fig.real_size(small.resize((512, 512), Image.BICUBIC)) == side
    assert fig.real_size(Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))) is None


def test_the_blotch_score_counts_structure_added_on_flat_ground():
    y, x = np.mgrid[0:128, 0:128]
    base = np.stack([np.clip(60 + 120 * (x > 64), 0, 255)] * 3, -1).astype(np.uint8)  # one edge
    assert fig.blotch_score(base, base) == 0
    blotched = base.astype(int)
    blotched[10:30, 10:30] -= 25  # a dark patch on the flat side
    assert fig.blotch_score(np.clip(blotched, 0, 255).astype(np.uint8), base) > 0.5  # 25 levels on 400 of ~14,000 px


def test_rows_are_the_hardest_three_then_others_spread_over_the_rest():
    scores = {f"f{i}": float(i) for i in range(10)}
    assert fig.pick_rows(scores, 3) == ["f9", "f8", "f7", "f6", "f3", "f0"]
    assert fig.pick_rows({"a": 1.0, "b": 2.0}, 3) == ["b", "a"]


def test_the_figure_of_the_realworld_faces(face_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "realworld.png"
    monkeypatch.setattr(sys, "argv", ["realworld_figure", "--out", str(out), "--data", str(face_data),
                                      "--lr", "16", "--models", "arasfsr"])
    assert fig.main() == 0
    table = capsys.readouterr().out
    assert table.count("| hardest |") == 2  # the synthetic set has two faces
    with Image.open(out) as img:
        assert img.size == (3 * 64 + 4 * 6, 26 + 2 * (22 + 64 + 6))  # input, bicubic, arasfsr at 100 %
