import numpy as np
import pytest
from PIL import Image

import arasfsr
from arasfsr import InputError, ModelError, output_size
from arasfsr.checkpoint import load_checkpoint, save_checkpoint
from arasfsr.models import create_model


def test_output_size_rules():
    assert output_size((50, 40), scale=3.3) == (165, 132)
    assert output_size((50, 40), scale=(3, 2)) == (150, 80)  # (sx, sy): width first, like size
    assert output_size((50, 40), scale=np.float32(2)) == (100, 80)
    assert output_size((50, 40), size=np.array([7, 9])) == (7, 9)
    assert output_size((50, 40), size=(173, 131)) == (173, 131)
    assert output_size((50, 40), scale=0.02) == (1, 1)
    for bad in ({"scale": 0}, {"scale": -2}, {"size": (0, 5)}, {"scale": 0.001}, {}):
        with pytest.raises(InputError):
            output_size((50, 40), **bad)
    with pytest.raises(InputError, match="limit"):
        output_size((50, 40), scale=1000)


@pytest.mark.parametrize("bad,words", [
    ({"scale": 1e308}, "too large"),  # was an OverflowError from round()
    ({"scale": (1, 1e308)}, "too large"),
    ({"scale": "2"}, "a number or a pair of numbers"),  # was a numpy TypeError
    ({"scale": ("2", "3")}, "a number or a pair of numbers"),
    ({"scale": (2, 3, 4)}, "a number or a pair of numbers"),
    ({"scale": True}, "a number or a pair of numbers"),
    ({"scale": float("nan")}, "positive and finite"),
    ({"size": (10.7, 10.2)}, "whole numbers"),  # was silently cut to 10x10
    ({"size": (10.0, 10)}, "whole numbers"),
    ({"size": 10}, "whole numbers"),
    ({"size": ("10", "10")}, "whole numbers"),
])
def test_output_size_refuses_what_it_cannot_use(bad, words):
    with pytest.raises(InputError, match=words):
        output_size((50, 40), **bad)
    with pytest.raises(InputError, match=words):  # the same through the model's upscale
        arasfsr.load_model("bicubic").upscale(np.zeros((40, 50, 3), np.uint8), max_pixels=None, **bad)


def test_upscale_pil_and_array_keep_their_kind(tiny):
    up = arasfsr.load_model(tiny)
    arr = (np.random.rand(20, 16, 3) * 255).astype(np.uint8)
    out = up.upscale(arr, size=(37, 29))
    assert isinstance(out, np.ndarray) and out.shape == (29, 37, 3) and out.dtype == np.uint8
    pil = up.upscale(Image.fromarray(arr).convert("L"), scale=(2.5, 1.5))
    assert isinstance(pil, Image.Image) and pil.size == (40, 30)


def test_checkpoint_round_trip_is_exact(tiny_model, tmp_path):
    loaded = load_checkpoint(save_checkpoint(tiny_model, tmp_path / "tiny.safetensors"))
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k


def test_pickle_checkpoints_are_refused(tmp_path):
    import torch

    pth = tmp_path / "model.pth"
    torch.save({"a": torch.zeros(1)}, pth)
    with pytest.raises(ModelError, match="pickle"):
        arasfsr.load_model(str(pth))
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pth.read_bytes())
    with pytest.raises(ModelError, match="pickle"):
        arasfsr.load_model(str(disguised))


def test_unknown_and_untrained_names_are_clear_errors():
    with pytest.raises(ModelError, match="unknown model"):
        arasfsr.load_model("no-such-model")
    assert arasfsr.load_model("bicubic").upscale(np.zeros((4, 4, 3), np.uint8), scale=2).shape == (8, 8, 3)
    untrained = arasfsr.load_model("e-liif", pretrained=False)
    assert untrained.model.arch == "liif"


def test_default_model_without_its_weights_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr("arasfsr.registry.WEIGHTS_DIR", tmp_path)  # an installation without weights
    with pytest.raises(ModelError, match="default model 'arasfsr' has no trained weights"):
        arasfsr.load_model()
    assert arasfsr.load_model("bicubic").upscale(np.zeros((4, 4, 3), np.uint8), scale=2).shape == (8, 8, 3)


def test_sample_z_is_seeded_and_off_by_default(tmp_path):
    """The authors' code draws the frequency latent at inference; here only on request,
    and a seed makes the draw reproducible. Both variants' configs survive a checkpoint."""
    model = create_model("arasfsr", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=[16],
                         frequency_width=8, frequency_blocks=1, variant="authors")
    path = save_checkpoint(model, tmp_path / "authors.safetensors", card={"description": "tiny"})
    up = arasfsr.load_model(str(path), precision="fp32")
    assert up.model.config["variant"] == "authors"
    arr = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    mean = up.upscale(arr, scale=2)
    assert np.array_equal(mean, up.upscale(arr, scale=2))
    drawn = up.upscale(arr, scale=2, sample_z=True, seed=3)
    assert np.array_equal(drawn, up.upscale(arr, scale=2, sample_z=True, seed=3))
    assert not np.array_equal(drawn, mean)
    assert not np.array_equal(drawn, up.upscale(arr, scale=2, sample_z=True, seed=4))
    assert np.array_equal(mean, up.upscale(arr, scale=2))  # the switch does not stick
    batch = up.upscale_batch(np.stack([arr, arr[::-1]]), (24, 20), sample_z=True, seed=3)
    assert np.array_equal(batch[0], drawn)  # a seeded draw does not depend on the batch
    assert np.array_equal(up.upscale_many([arr[::-1], arr], scale=2, sample_z=True, seed=3)[1], drawn)
    for bad in ({"seed": 1}, {"sample_z": True, "seed": -1}, {"sample_z": True, "seed": 1.5}):
        with pytest.raises(InputError):
            up.upscale(arr, scale=2, **bad)
    with pytest.raises(InputError, match="frequency"):
        arasfsr.load_model("bicubic").upscale(arr, scale=2, sample_z=True)
    pytest.importorskip("onnxruntime")
    with pytest.raises(InputError, match="ONNX"):  # the exported graph computes the mean
        arasfsr.load_model(str(path), engine="onnx").upscale(arr, scale=2, sample_z=True, seed=3)
def test_downscale_is_antialiased_bicubic_without_the_network(tiny, monkeypatch):
    up = arasfsr.load_model(tiny)
    monkeypatch.setattr(up.model, "render", lambda *a, **k: pytest.fail("the network ran for a down-scale"))
    arr = (np.random.default_rng(0).random((300, 240, 3)) * 255).astype(np.uint8)
    expected = arasfsr.load_model("bicubic").upscale(arr, size=(64, 80))
    assert np.array_equal(up.upscale(arr, size=(64, 80)), expected)
    assert up.upscale(arr, size=(240, 250)).shape == (250, 240, 3)  # one axis equal: still no network


def test_faces_far_outside_the_trained_sizes_get_one_line(tiny, monkeypatch, capsys):
    up = arasfsr.load_model(tiny)
    arr = np.zeros((300, 200, 3), np.uint8)
    monkeypatch.setattr(up, "network", lambda lr, size, chunk=None: lr.new_zeros(1, 3, *size))
    up.upscale(arr, scale=1.5)
    up.upscale(arr, scale=2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: the input is 200x300 px, far outside the 12-96 px" in err
    up.upscale(np.zeros((64, 40, 3), np.uint8), scale=2)  # inside: quiet
    arasfsr.load_model("bicubic").upscale(np.zeros((4, 4, 3), np.uint8), scale=2)  # no training, no warning
    assert capsys.readouterr().err == ""
    up.upscale(np.zeros((4, 4, 3), np.uint8), scale=2)
    assert "blurred guess" in capsys.readouterr().err
