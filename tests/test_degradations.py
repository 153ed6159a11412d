"""The realistic degradation chain: its draws stay in the configured ranges and take every
option, a seed fixes them, every step (blur, reduction, noise, JPEG, a second round) really
acts, both training paths make the same inputs, and protocol R / paper/R-arasfsr fit the
default model."""

import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arasfsr.cli.main import main
from arasfsr.data.degrade import (REALISTIC, Blur, Noise, Round, add_realistic_noise, apply_realistic, convolve,
                                  degrade, draw_realistic, gaussian_kernel, jpeg, realistic_settings)
from arasfsr.errors import InputError
from arasfsr.protocols import EVAL_STREAM, get_protocol, make_pair
from arasfsr.protocols import TestRow as Row  # (a "Test" name pytest would try to collect)
from arasfsr.training import load_config, train
from arasfsr.training.data import StepBatches, augment, list_images, subset
from arasfsr.training.device_data import StepPlans, decode_faces

ROOT = Path(__file__).resolve().parents[1]


def _texture(seed: int = 0, side: int = 96) -> Image.Image:
    """A picture with detail at every scale (edges, stripes, noise): what blur and JPEG act on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(40 * x) * 60, np.cos(25 * y) * 50, (x > 0.5) * 80.0], -1) + 110
    return Image.fromarray(np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8))


def _high(img: Image.Image, axis: int | None = None) -> float:
    """Mean absolute second difference of the grey image (high frequencies), along one axis or both."""
    a = np.asarray(img.convert("L"), dtype=np.float64)
    d = [np.abs(np.diff(a, 2, axis=k)).mean() for k in ((0, 1) if axis is None else (axis,))]
    return float(sum(d))


# ---------------------------------------------------------------- draws


def test_realistic_draws_stay_in_their_ranges_and_take_every_option():
    s = REALISTIC
    plans = [draw_realistic(np.random.default_rng([seed, 3])) for seed in range(3000)]
    assert all(1 <= len(p) <= 2 for p in plans)  # clean_prob 0: never a plain bicubic input
    second = sum(len(p) == 2 for p in plans) / len(plans)
    assert abs(second - s["second_prob"]) < 0.04
    seen: Counter = Counter()
    for plan in plans:
        assert plan[-1].scale == 1.0  # the last round lands on the LR size
        if len(plan) == 2:
            assert s["second_scale"][0] <= plan[0].scale <= s["second_scale"][1]
        for i, r in enumerate(plan):
            lo, hi = s["blur2_sigma" if i else "blur_sigma"]
            if r.blur is not None:
                assert all(lo <= v <= hi for v in r.blur.sigma) and 0 <= r.blur.angle < math.pi
                seen[i, "iso" if r.blur.sigma[0] == r.blur.sigma[1] else "aniso"] += 1
            else:
                seen[i, "no blur"] += 1
            seen[i, r.resize] += 1
            if r.noise is not None:
                key = "gaussian_sigma" if r.noise.kind == "gaussian" else "poisson_scale"
                assert s[key][0] <= r.noise.level <= s[key][1]
                seen[i, r.noise.kind, "grey" if r.noise.grey else "colour"] += 1
            if r.jpeg is not None:
                assert isinstance(r.jpeg, int) and s["jpeg_quality"][0] <= r.jpeg <= s["jpeg_quality"][1]
                seen[i, "jpeg", r.jpeg] += 1
    for i in (0, 1):  # every option in both rounds
        for option in ("iso", "aniso", "no blur", "bicubic", "bilinear", "area"):
            assert seen[i, option] > 0, (i, option)
        for kind in ("gaussian", "poisson"):
            assert seen[i, kind, "grey"] > 0 and seen[i, kind, "colour"] > 0, (i, kind)
    qualities = {k[2] for k in seen if k[1] == "jpeg"}
    assert {s["jpeg_quality"][0], s["jpeg_quality"][1]} <= qualities  # both ends, inclusive
    first = len(plans)
    assert abs(seen[0, "no blur"] / first - (1 - s["blur_prob"])) < 0.03


def test_settings_override_the_ranges():
    only_area = {"resize": ["area"], "second_prob": 1.0, "jpeg_quality": [70, 70], "noise_prob": 0.0}
    for seed in range(50):
        plan = draw_realistic(np.random.default_rng(seed), only_area)
        assert len(plan) == 2 and all(r.resize == "area" and r.noise is None and r.jpeg in (None, 70) for r in plan)
    assert all(draw_realistic(np.random.default_rng(seed), {"clean_prob": 1.0}) == () for seed in range(20))
    img = _texture()
    clean = degrade(img, (24, 24), "realistic", np.random.default_rng(0), {"clean_prob": 1.0})
    assert np.array_equal(np.asarray(clean), np.asarray(img.resize((24, 24), Image.BICUBIC)))
    with pytest.raises(ValueError, match="unknown realistic setting"):
        realistic_settings({"blur": 1})


def test_a_seed_fixes_the_input():
    img = _texture(1)
    a = degrade(img, (20, 20), "realistic", np.random.default_rng([7, 11, 3]))
    b = degrade(img, (20, 20), "realistic", np.random.default_rng([7, 11, 3]))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    outs = {degrade(img, (20, 20), "realistic", np.random.default_rng([s, 11, 3])).tobytes() for s in range(8)}
    assert len(outs) == 8
    assert np.array_equal(np.asarray(degrade(img, (20, 20), "realistic")),
                          np.asarray(degrade(img, (20, 20), "realistic")))  # no rng: a fixed seed


def test_evaluation_draws_are_fixed_and_held_out_from_training_streams():
    img, row = _texture(2, 128), Row("faces", 16, 64, "realistic")
    lr, hr = make_pair(img, row)
    assert np.array_equal(lr, make_pair(img, row)[0]) and lr.shape == (16, 16, 3) and hr.shape == (64, 64, 3)
    import zlib

    untagged = np.random.default_rng([zlib.crc32(img.tobytes()), 16, 64])
    assert not np.array_equal(lr, np.asarray(degrade(img, (16, 16), "realistic", untagged)))
    tagged = np.random.default_rng([zlib.crc32(img.tobytes()), 16, 64, EVAL_STREAM])
    assert np.array_equal(lr, np.asarray(degrade(img, (16, 16), "realistic", tagged)))


# ---------------------------------------------------------------- each step acts


def test_the_kernel_has_the_drawn_covariance():
    for blur, stretch in ((Blur((1.5, 1.5)), (1.0, 1.0)), (Blur((2.0, 0.7), 0.6), (1.0, 1.0)),
                          (Blur((1.2, 0.5), 2.0), (3.0, 2.0))):
        k = gaussian_kernel(blur, stretch)
        assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1 and abs(k.sum() - 1) < 1e-12
        assert np.allclose(k, k[::-1, ::-1])  # centred
        ry, rx = k.shape[0] // 2, k.shape[1] // 2
        y, x = np.mgrid[-ry:ry + 1, -rx:rx + 1]
        measured = np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])
        c, s = math.cos(blur.angle), math.sin(blur.angle)
        rot = np.array([[c, -s], [s, c]])
        want = np.diag(stretch) @ rot @ np.diag(np.square(blur.sigma)) @ rot.T @ np.diag(stretch)
        assert np.allclose(measured, want, rtol=0.03, atol=0.02), (blur, measured, want)


def test_convolution_keeps_flat_images_and_moves_nothing():
    flat = np.full((20, 30, 3), 77.0)
    assert np.allclose(convolve(flat, gaussian_kernel(Blur((3.0, 1.0), 0.4))), 77.0)
    delta = np.zeros((41, 41, 1))
    delta[20, 20] = 1.0
    k = gaussian_kernel(Blur((2.0, 1.0), 1.0))
    out = convolve(delta, k)[..., 0]
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    assert np.allclose(out[20 - ry:21 + ry, 20 - rx:21 + rx], k, atol=1e-6)  # float32 transforms


def _one(blur=None, resize="bicubic", noise=None, quality=None, scale=1.0) -> tuple[Round, ...]:
    return (Round(scale, blur, resize, noise, quality),)


def test_blur_removes_high_frequencies_along_its_axis():
    img = _texture(3, 160)
    sharp = apply_realistic(img, (40, 40), _one())
    soft = apply_realistic(img, (40, 40), _one(Blur((1.2, 1.2))))
    assert _high(soft) < 0.6 * _high(sharp)
    across = apply_realistic(img, (40, 40), _one(Blur((1.5, 0.2), 0.0)))  # along x only
    assert _high(across, axis=1) < 0.6 * _high(sharp, axis=1)
    assert _high(across, axis=0) > 0.85 * _high(sharp, axis=0)
    # Blurring at the reduced working size (4x the output) is blurring the whole face, then reducing.
    big = _texture(3, 200)
    blur = Blur((1.0, 0.6), 0.5)
    full = convolve(np.asarray(big, dtype=np.float64), gaussian_kernel(blur, (200 / 30, 200 / 30)))
    ref = Image.fromarray(np.clip(np.rint(full), 0, 255).astype(np.uint8)).resize((30, 30), Image.BICUBIC)
    got = apply_realistic(big, (30, 30), _one(blur))
    err = np.asarray(got, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    assert 0 < np.mean(err**2) and 10 * np.log10(255**2 / np.mean(err**2)) > 40


def test_the_reduction_method_matters():
    img = _texture(4, 150)
    outs = {m: np.asarray(apply_realistic(img, (30, 30), _one(resize=m))) for m in ("bicubic", "bilinear", "area")}
    assert np.array_equal(outs["area"], np.asarray(img.resize((30, 30), Image.BOX)))
    assert np.array_equal(outs["bilinear"], np.asarray(img.resize((30, 30), Image.BILINEAR)))
    assert np.array_equal(outs["bicubic"], np.asarray(img.resize((30, 30), Image.BICUBIC)))
    for a, b in (("bicubic", "bilinear"), ("bicubic", "area"), ("bilinear", "area")):
        assert np.abs(outs[a].astype(int) - outs[b]).mean() > 1.0, (a, b)
    assert _high(Image.fromarray(outs["bicubic"])) > _high(Image.fromarray(outs["bilinear"]))  # bicubic is sharper


@pytest.mark.parametrize("kind,level,want", [("gaussian", 6.0, 6.0), ("poisson", 0.5, 0.5 * math.sqrt(120.0))])
def test_noise_adds_the_drawn_variance(kind, level, want):
    flat = Image.fromarray(np.full((128, 128, 3), 120, np.uint8))
    for grey in (False, True):
        out = np.asarray(add_realistic_noise(flat, Noise(kind, level, grey, 5)), dtype=np.float64)
        assert abs(out.std() - want) < 0.06 * want, (grey, out.std())
        same = all(np.array_equal(out[..., 0], out[..., c]) for c in (1, 2))
        assert same == grey  # grey noise: one noise for the three channels
    a = add_realistic_noise(flat, Noise(kind, level, False, 5))
    assert np.array_equal(np.asarray(a), np.asarray(add_realistic_noise(flat, Noise(kind, level, False, 5))))


def _blockiness(img: Image.Image) -> float:
    """Mean jump across the 8x8 block borders over the mean jump inside blocks."""
    a = np.asarray(img.convert("L"), dtype=np.float64)
    d = np.abs(np.diff(a, axis=1))
    border = d[:, 7::8].mean()
    inside = np.delete(d, np.s_[7::8], axis=1).mean()
    return border / inside


def test_jpeg_compresses_in_8x8_blocks():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64] / 64
    smooth = Image.fromarray(np.clip(np.stack([90 + 80 * x, 100 + 60 * y, 120 + 40 * x * y], -1)
                                     + rng.normal(0, 4, (64, 64, 3)), 0, 255).astype(np.uint8))
    plain = apply_realistic(smooth, (64, 64), _one(resize="area"))
    coded = apply_realistic(smooth, (64, 64), _one(resize="area", quality=40))
    assert plain.tobytes() != coded.tobytes()
    assert np.array_equal(np.asarray(coded), np.asarray(jpeg(plain, 40)))
    assert _blockiness(coded) > 1.3 * _blockiness(plain) and _blockiness(coded) > 1.3


def test_a_second_round_reduces_twice():
    img = _texture(5, 120)
    first = Round(2.0, None, "area", None, None)
    assert apply_realistic(img, (15, 15), (first,)).size == (30, 30)
    two = apply_realistic(img, (15, 15), (first, Round(1.0, None, "bilinear", None, 50)))
    assert two.size == (15, 15)
    assert np.array_equal(np.asarray(two), np.asarray(jpeg(img.resize((30, 30), Image.BOX).resize((15, 15), Image.BILINEAR), 50)))
    # non-square targets (a recipe's crops)
    assert degrade(img.crop((0, 0, 120, 80)), (24, 16), "realistic", np.random.default_rng(1)).size == (24, 16)


# ---------------------------------------------------------------- training paths and configs


def test_both_training_paths_make_the_same_realistic_inputs(face_data):
    files = subset(list_images(face_data / "utkface" / "train"), 6)
    faces = decode_faces(files)
    cfg = load_config("smoke/P-arasfsr", ["train.batch_size=4", "data.degradation=realistic"])
    steps = StepBatches(files, cfg["data"], 4, seed=3)
    for step in (0, 2):
        plans = StepPlans(steps, faces)[step]
        assert torch.equal(steps[step]["lr"], plans["lr_u8"].permute(0, 3, 1, 2).float() / 255)
    # the config's ranges reach both paths: nothing left but an area reduction
    bare = load_config("smoke/P-arasfsr", ["train.batch_size=4", "data.degradation=realistic", "data.realistic.resize=[area]",
                                           "data.realistic.blur_prob=0", "data.realistic.noise_prob=0",
                                           "data.realistic.jpeg_prob=0", "data.realistic.second_prob=0"])
    steps = StepBatches(files, bare["data"], 4, seed=3)
    lr, _, _ = steps.plan(1)
    batch, plans = steps[1], StepPlans(steps, faces)[1]
    for i in range(4):
        img = augment(steps.source(4 + i), bare["data"], np.random.default_rng([3, 4 + i, 3]))
        want = np.array(img.resize((lr, lr), Image.BOX))
        assert np.array_equal(plans["lr_u8"][i].numpy(), want)
        assert torch.equal(batch["lr"][i], torch.from_numpy(want).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("setting,value,message", [
    ("blur_prob", "1.5", "blur_prob must be a finite number at least 0 and at most 1"),
    ("blur_sigma", "[0, 1]", "blur_sigma must be \\[min, max\\] of numbers from 0 to 10 \\(above 0\\)"),
    ("jpeg_quality", "[90, 30]", "jpeg_quality must be \\[min, max\\] of whole numbers from 1 to 100"),
    ("jpeg_quality", "[30.5, 90]", "whole numbers"),
    ("resize", "[nearest]", "resize must be a non-empty list of bicubic, bilinear, area"),
    ("resize", "[]", "non-empty"),
    ("second_scale", "[0.1, 2]", "second_scale must be"),
])
def test_bad_realistic_settings_are_refused(setting, value, message):
    with pytest.raises(InputError, match=message):
        load_config("smoke/P-arasfsr", [f"data.realistic.{setting}={value}"])
    with pytest.raises(InputError, match="unknown key"):
        load_config("smoke/P-arasfsr", ["data.realistic.sharpen=1"])


def test_protocol_r_rows_and_its_val_split(face_data):
    from arasfsr.evaluation.runner import split_rows

    rows = get_protocol("R").rows
    assert [(x.dataset, x.lr, x.hr) for x in rows] == [
        ("utkface/test", 16, 128), ("utkface/test", 32, 128), ("ffhq/test", 16, 128), ("ffhq/test", 32, 128),
        ("ffhq/test", 64, 256)]
    assert all(x.degradation == "realistic" for x in rows)
    val = split_rows(list(rows), "val", face_data)  # model selection: the UTKFace rows on val faces
    assert [(x.dataset, x.lr, x.hr, x.degradation) for x in val] == [
        ("utkface/val", 16, 128, "realistic"), ("utkface/val", 32, 128, "realistic")]


def test_paper_r_arasfsr_fine_tunes_the_default_model():
    """Same architecture and network config as the default: --init takes its weights."""
    from arasfsr.models import create_model
    from arasfsr.training.config import model_spec
    from arasfsr.training.run import _load_init

    cfg, default = load_config("paper/R-arasfsr"), load_config("paper/P-arasfsr")
    assert model_spec(cfg) == model_spec(default)
    assert cfg["data"]["degradation"] == "realistic" and cfg["data"]["scale"] == default["data"]["scale"]
    card = _load_init(create_model(*model_spec(cfg)[:1], **model_spec(cfg)[1]),
                      ROOT / "src" / "arasfsr" / "weights" / "arasfsr.safetensors")
    assert card["protocol"] == "P"


def test_a_realistic_run_and_its_evaluation(face_data, tmp_path):
    base = train("smoke/P-arasfsr", out=tmp_path / "p", data_root=face_data, overrides=["train.iterations=1"])
    weights = train("smoke/R-arasfsr", out=tmp_path / "r", data_root=face_data, init=base,
                    overrides=["train.iterations=2", "data.realistic.jpeg_quality=[50, 90]"])
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["data"]["degradation"] == "realistic" and card["data"]["realistic"]["jpeg_quality"] == [50, 90]
    out = tmp_path / "eval"
    assert main(["eval", "--protocol", "R", "--model", str(weights), "--data", str(face_data), "--limit", "2",
                 "--out", str(out), "--no-pictures"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["results"]) == 2 * 5
    md = (out / "results.md").read_text()
    assert "## utkface/test, realistic LR" in md and "## ffhq/test, realistic LR" in md
    again = tmp_path / "again"
    assert main(["eval", "--protocol", "R", "--model", str(weights), "--data", str(face_data), "--limit", "2",
                 "--out", str(again), "--no-pictures"]) == 0
    assert json.loads((again / "results.json").read_text())["results"] == results["results"]  # fixed draws
