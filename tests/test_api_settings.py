"""The Python API checks what it is given: arrays, sizes (width first everywhere), pixel
limits, iterables and devices; render settings are set once on the Upscaler, checked once,
and no call changes the shared model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import arasfsr
from arasfsr.errors import DeviceError, InputError, SettingError


@pytest.fixture(scope="module")
def bicubic():
    return arasfsr.load_model("bicubic")


@pytest.mark.parametrize("images, size, words", [
    (np.zeros((1, 8, 8, 3), np.uint16), (16, 16), "must be uint8"),  # wrapped modulo 256 before
    (np.full((1, 8, 8, 3), 0.5, np.float32), (16, 16), "for values in 0..1"),  # near-black before
    (np.zeros((1, 8, 8, 3), np.uint8), (0, 0), "at least 1 pixel"),
    (np.zeros((1, 8, 8, 3), np.uint8), (-1, 5), "at least 1 pixel"),
    (np.zeros((1, 8, 8, 3), np.uint8), (48.5, 48), "whole numbers"),
    (np.zeros((8, 8, 3), np.uint8), (16, 16), "(B, H, W, 3)"),
    (np.zeros((1, 8, 8, 4), np.uint8), (16, 16), "(B, H, W, 3)"),
    (np.zeros((0, 8, 8, 3), np.uint8), (16, 16), "empty"),
])
def test_upscale_batch_checks_what_it_is_given(bicubic, images, size, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        bicubic.upscale_batch(images, size=size)


def test_one_size_convention_width_first(bicubic):
    batch = np.random.default_rng(0).integers(0, 256, (2, 10, 8, 3), np.uint8)
    assert bicubic.upscale_batch(batch, size=(30, 20)).shape == (2, 20, 30, 3)  # (W, H) as upscale's size
    assert bicubic.upscale(batch[0], size=(30, 20)).shape == (20, 30, 3)
    with pytest.warns(DeprecationWarning, match="size=\\(W, H\\)"):
        old = bicubic.upscale_batch(batch, (20, 30))  # the older (H, W) spelling still works
    assert np.array_equal(old, bicubic.upscale_batch(batch, size=(30, 20)))


@pytest.mark.parametrize("value", ["5", float("nan"), float("inf"), 0, -3, 2.5, True])
def test_max_pixels_must_be_a_whole_number(bicubic, value):
    with pytest.raises(SettingError, match="max_pixels"):
        bicubic.upscale(np.zeros((4, 4, 3), np.uint8), scale=2, max_pixels=value)
    with pytest.raises(SettingError, match="max_pixels"):
        arasfsr.load_model("bicubic", max_pixels=value)


def test_upscale_many_takes_any_iterable(bicubic):
    arrs = [np.full((4, 5, 3), v, np.uint8) for v in (10, 200)]
    outs = bicubic.upscale_many((a for a in arrs), scale=2)
    assert [o.shape for o in outs] == [(8, 10, 3)] * 2
    with pytest.raises(InputError, match="for one image use upscale"):
        bicubic.upscale_many(arrs[0], scale=2)


@pytest.mark.parametrize("device, words", [("gpu", "unknown device 'gpu'"), ("mps", "mps"), ("meta", "cannot run"),
                                           ("cuda:7", "CUDA")])
def test_devices_are_checked_when_the_model_is_loaded(device, words):
    if device.startswith("cuda") and __import__("torch").cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    with pytest.raises(DeviceError, match=words):
        arasfsr.load_model("bicubic", device=device)


def test_render_settings_are_set_once_and_checked_once(tiny):
    up = arasfsr.load_model(tiny, chunk_size=64, max_pixels=10_000, precision="fp32")
    assert (up.settings.chunk_size, up.settings.max_pixels, up.precision) == (64, 10_000, "fp32")
    arr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8)
    with pytest.raises(InputError, match="above the limit of 10,000"):
        up.upscale(arr, scale=10)  # the Upscaler's limit, without repeating it per call
    other = up.with_settings(max_pixels=None)
    assert other.model is up.model and up.settings.max_pixels == 10_000
    assert other.upscale(arr, scale=10).shape == (120, 100, 3)
    assert np.array_equal(up.upscale(arr, scale=2), arasfsr.load_model(tiny, precision="fp32").upscale(arr, scale=2))
    for bad, words in (({"chunk_size": 0}, "chunk_size"), ({"seed": 3}, "sample_z too"),
                       ({"sample_z": "yes"}, "sample_z"), ({"precision": "fp16"}, "precision")):
        with pytest.raises(SettingError, match=words):
            arasfsr.load_model(tiny, **bad)
        with pytest.raises(SettingError, match=words):
            up.with_settings(**bad)
    with pytest.raises(SettingError, match="frequency module"):
        arasfsr.load_model("bicubic", sample_z=True)


def test_sampling_z_changes_no_shared_state(tiny, monkeypatch):
    """Two threads share one model, one drawing z and one using its mean: each gets what it
    would get alone (the model's own switch is never touched)."""
    up = arasfsr.load_model(tiny, precision="fp32")
    model = up.model
    seen = []
    real = type(model.frequency).forward

    def record(self, lr, sample=False, seed=None):
        seen.append((model.sample, model.sample_seed))
        return real(self, lr, sample, seed)

    monkeypatch.setattr(type(model.frequency), "forward", record)
    arr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8)
    mean, drawn = up.upscale(arr, scale=2), up.upscale(arr, scale=2, sample_z=True, seed=5)
    assert not np.array_equal(mean, drawn) and set(seen) == {(False, None)}
    results: dict[str, list] = {"mean": [], "drawn": []}

    def work(kind):
        for _ in range(5):
            results[kind].append(up.upscale(arr, scale=2, **({"sample_z": True, "seed": 5} if kind == "drawn" else {})))

    threads = [threading.Thread(target=work, args=(k,)) for k in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, mean) for r in results["mean"])
    assert all(np.array_equal(r, drawn) for r in results["drawn"])
