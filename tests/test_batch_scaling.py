"""tools/bench/batch_scaling.py: every arm sees the same faces, with its recipe scaled to its batch."""

import json
from pathlib import Path

import pytest

from tools.bench import batch_scaling


def test_arms_see_the_same_faces_with_warmup_and_ema_scaled_to_their_batch(face_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    assert batch_scaling.main(["--config", "smoke/A-arasfsr", "--samples", "32", "--warmup-samples", "8",
                               "--arms", "2:1e-4", "8:4e-4", "--val-points", "2", "--val-count", "4",
                               "--data-root", str(face_data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["provenance"]["command"].startswith("python -m tools.bench.batch_scaling --config smoke/A-arasfsr ")
    small, large = result["arms"]
    sets = [dict(s.split("=", 1) for s in arm["sets"]) for arm in (small, large)]
    assert [s["train.iterations"] for s in sets] == ["16", "4"]
    assert [s["train.warmup"] for s in sets] == ["4", "1"]
    assert [float(s["train.ema_decay"]) for s in sets] == pytest.approx([0.999, 0.996])
    assert [s["train.lr"] for s in sets] == ["0.0001", "0.0004"]
    for arm in (small, large):
        assert [v["samples"] for v in arm["val_psnr"]] == [16, 32]
        assert all(v["psnr"] > 10 for v in arm["val_psnr"])


def test_scaled_to_batch_keeps_the_recipe_per_face() -> None:
    from tools.recipes import scaled_to_batch

    train = {"batch_size": 16, "lr": 1e-4, "warmup": 100, "ema_decay": 0.999}
    assert scaled_to_batch(train, 4) == ["train.batch_size=64", "train.lr=0.0004", "train.warmup=25",
                                         "train.ema_decay=0.996"]
    assert scaled_to_batch(train, 4, lr=2e-4)[1] == "train.lr=0.0002"  # a rate of one's own
    assert scaled_to_batch({**train, "warmup": 0, "ema_decay": None}, 2) == ["train.batch_size=32", "train.lr=0.0002"]
