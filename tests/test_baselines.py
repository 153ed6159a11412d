"""LTE, DIINN and SPARNet: one property of each from its paper, and paper-size models."""

import pytest
import torch
import torch.nn.functional as F

from arasfsr.models import create_model
from arasfsr.models.core import make_coord, scale_ratio
from arasfsr.registry import resolve
from test_core import small_model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lte_phase_depends_on_the_cell_only_through_its_phase_layer():
    model = small_model("lte")
    lr = torch.rand(1, 3, 8, 8)
    coord = make_coord((20, 14)).unsqueeze(0)
    ratios = scale_ratio((8, 8), (20, 14), 1), scale_ratio((8, 8), (40, 28), 1)
    with torch.no_grad():
        a, b = (model(lr, coord, r) for r in ratios)
        assert (a - b).abs().max() > 1e-4  # same points, other cell: other texture
        model.phase.weight.zero_()
        a, b = (model(lr, coord, r) for r in ratios)
    assert torch.allclose(a, b, atol=1e-6)


def test_diinn_varies_within_one_lr_pixel_through_its_positional_branch():
    model = small_model("diinn")
    lr = torch.rand(1, 3, 6, 6)
    # Four points inside the same LR pixel (its centre is (-1/6, -1/6)): one latent code.
    coord = torch.tensor([[[-0.30, -0.30], [-0.20, -0.05], [-0.05, -0.25], [-0.17, -0.17]]])
    ratio = scale_ratio((6, 6), (24, 24), 1)
    with torch.no_grad():
        out = model(lr, coord, ratio)
        assert (out - out[:, :1]).abs().max() > 1e-4
        model.position[0].weight[:, :2].zero_()  # cut the relative coordinate
        out = model(lr, coord, ratio)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)


def test_diinn_local_ensemble_switch_uses_the_core_ensemble():
    nearest, ensemble = small_model("diinn"), small_model("diinn", local_ensemble=True)
    ensemble.load_state_dict(nearest.state_dict())
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert (nearest.render(lr, (18, 18)) - ensemble.render(lr, (18, 18))).abs().max() > 1e-4
    assert create_model("diinn", **resolve("e-diinn").config).config["local_ensemble"] is False


def test_sparnet_is_8x_natively_and_resizes_its_output_otherwise():
    model = small_model("sparnet")
    lr = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        up = F.interpolate(lr, size=(80, 72), mode="bicubic", align_corners=False).clamp(0, 1)
        native = (model.net(up * 2 - 1) * 0.5 + 0.5).clamp(0, 1)
        assert torch.allclose(model.render(lr, (80, 72)), native, atol=1e-6)
        for size in ((128, 100), (37, 23)):
            expected = F.interpolate(model.net(up * 2 - 1) * 0.5 + 0.5, size=size, mode="bicubic",
                                     align_corners=False, antialias=True).clamp(0, 1)
            assert torch.allclose(model.render(lr, size), expected, atol=1e-6)
        tiny = model.render(torch.rand(1, 3, 3, 2), (24, 16))  # below the hourglasses' size: padded
    assert tiny.shape == (1, 3, 24, 16) and torch.isfinite(tiny).all()


# Paper-default sizes; the published counts are E-LIIF 1.57M, E-LTE 1.7M, SPARNet 10.5M.
@pytest.mark.parametrize("name, low, high", [("e-lte", 1.6e6, 1.8e6), ("e-diinn", 2.0e6, 2.4e6),
                                             ("sparnet", 10.0e6, 11.0e6), ("e-liif", 1.5e6, 1.6e6)])
def test_paper_default_parameter_counts(name, low, high):
    preset = resolve(name)
    assert low < n_params(create_model(preset.arch, **preset.config)) < high


@pytest.mark.parametrize("arch", ["lte", "diinn", "sparnet"])
def test_checkpoint_rebuilds_the_same_model(arch, tmp_path):
    from arasfsr.checkpoint import load_checkpoint, save_checkpoint

    model = small_model(arch, **({"local_ensemble": True} if arch == "diinn" else {}))
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.safetensors")).eval()
    assert loaded.config == model.config
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.render(lr, (20, 13)), loaded.render(lr, (20, 13)))


@pytest.mark.parametrize("arch, bad", [("sparnet", {"scale": 6}), ("sparnet", {"norm": "gn"}),
                                       ("lte", {"hidden_dim": 15})])
def test_bad_configs_are_model_errors(arch, bad):
    from arasfsr import ModelError

    with pytest.raises(ModelError):
        create_model(arch, **bad)
