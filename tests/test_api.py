import numpy as np
import pytest
from PIL import Image

import arasfsr
from arasfsr import InputError, ModelError, output_size
from arasfsr.checkpoint import load_checkpoint, save_checkpoint


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
