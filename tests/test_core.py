"""The shared implicit-query core and the properties every model must have."""

import pytest
import torch

from arasfsr.models import ARCHITECTURES, create_model
from arasfsr.models.core import ImplicitSR, area_weights, gather_stacked, make_coord, scale_ratio

SMALL = {"encoder_args": {"n_resblocks": 2, "n_feats": 16}, "hidden": [32, 32]}
SMALL_CONFIGS = {
    "arasfsr": {**SMALL, "frequency_width": 16, "frequency_blocks": 1},
    "liif": SMALL,
    "bicubic": {},
    "lte": {**SMALL, "hidden_dim": 16},
    "diinn": SMALL,
    "sparnet": {"min_ch": 4, "max_ch": 8, "attention_ch": 8, "res_depth": 1},
}


def small_model(arch: str, **extra):
    torch.manual_seed(0)
    return create_model(arch, **{**SMALL_CONFIGS.get(arch, {}), **extra}).eval()


def test_make_coord_are_pixel_centres():
    c = make_coord((2, 4))
    assert c.shape == (8, 2)
    assert torch.allclose(c[:4, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(c[::4, 0], torch.tensor([-0.5, 0.5]))


def test_ensemble_weights_sum_to_one_and_are_bilinear():
    feat = torch.randn(2, 5, 7, 6)
    coord = torch.rand(2, 300, 2) * 2 - 1
    weights = area_weights(gather_stacked(feat, coord).rel_coord)  # (K, B, Q)
    total = weights.sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert (weights >= 0).all()
    # Ensemble of the codes' own coordinates is bilinear interpolation of the grid.
    grid_y = make_coord((7, 6))[:, 0].view(1, 1, 7, 6).expand(2, 1, 7, 6)
    interp = (gather_stacked(grid_y.contiguous(), coord).feat[..., 0] * weights).sum(0)
    inside = (coord[..., 0].abs() < 1 - 1 / 7) & (coord[..., 1].abs() < 1 - 1 / 6)
    assert torch.allclose(interp[inside], coord[..., 0][inside], atol=1e-5)


def test_scale_ratio_is_inverse_scale_per_axis():
    r = scale_ratio((16, 20), (64, 30), batch=3)
    assert r.shape == (3, 2)
    assert torch.allclose(r[0], torch.tensor([0.25, 20 / 30]))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_one_chunk_equals_many_chunks(arch):
    model = small_model(arch)
    lr = torch.rand(2, 3, 11, 9)
    with torch.no_grad():
        whole = model.render(lr, (37, 23), chunk_size=10**6)
        pieces = model.render(lr, (37, 23), chunk_size=53)
    assert whole.shape == (2, 3, 37, 23)
    assert (whole - pieces).abs().max() < 1e-5


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (40, 90)])
def test_any_output_size_including_downscaling(arch, size):
    model = small_model(arch)
    with torch.no_grad():
        out = model.render(torch.rand(1, 3, 12, 10), size)
    assert out.shape == (1, 3, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", [a for a in sorted(ARCHITECTURES)
                                  if issubclass(ARCHITECTURES[a], ImplicitSR)])
def test_forward_at_pixel_centres_matches_render(arch):
    model = small_model(arch)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        img = model.render(lr, (20, 14))
        coord = make_coord((20, 14)).unsqueeze(0)
        pred = model(lr, coord, scale_ratio((8, 8), (20, 14), 1))
    assert torch.allclose(pred.transpose(1, 2).reshape(1, 3, 20, 14), img, atol=1e-5)


@pytest.mark.parametrize("arch", [a for a in sorted(ARCHITECTURES)
                                  if not issubclass(ARCHITECTURES[a], ImplicitSR)])
def test_forward_reads_each_sample_at_its_own_size(arch):
    """A batch with mixed output sizes (training on varied HR sizes) equals the samples
    one by one: the render size comes from each sample's ratio, not the first one's."""
    model = small_model(arch)
    lr = torch.rand(3, 3, 8, 8)
    coord = torch.rand(3, 50, 2) * 2 - 1
    sizes = [(20, 14), (16, 16), (20, 14)]
    ratio = torch.cat([scale_ratio((8, 8), s, 1) for s in sizes])
    with torch.no_grad():
        batch = model(lr, coord, ratio)
        alone = [model(lr[i:i + 1], coord[i:i + 1], ratio[i:i + 1]) for i in range(3)]
    assert torch.allclose(batch, torch.cat(alone), atol=1e-6)
    if batch.std() > 1e-3:  # (an untrained SPARNet gives a flat grey) the size matters
        assert (alone[0] - model(lr[:1], coord[:1], ratio[1:2])).abs().max() > 1e-3


@pytest.mark.parametrize("switch", ["frequency", "modulation", "skip"])
def test_ablation_switches_remove_their_module(switch):
    full = small_model("arasfsr")
    ablated = small_model("arasfsr", **{switch: False})
    n_full = sum(p.numel() for p in full.parameters())
    n_ablated = sum(p.numel() for p in ablated.parameters())
    if switch == "skip":
        assert n_ablated == n_full  # the skip connection has no parameters
    else:
        assert n_ablated < n_full
    # Same weights where they exist: only the removed module changes the output.
    own = ablated.state_dict()
    ablated.load_state_dict({k: v for k, v in full.state_dict().items()
                             if k in own and own[k].shape == v.shape}, strict=False)
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert (full.render(lr, (25, 25)) - ablated.render(lr, (25, 25))).abs().max() > 1e-4


def test_without_skip_differs_exactly_by_bilinear_upsampling():
    full = small_model("arasfsr")
    no_skip = small_model("arasfsr", skip=False)
    no_skip.load_state_dict(full.state_dict())
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        diff = full.render(lr, (20, 20)) - no_skip.render(lr, (20, 20))
    bilinear = torch.nn.functional.interpolate(lr * 2 - 1, size=(20, 20), mode="bilinear",
                                               align_corners=False) * 0.5
    assert torch.allclose(diff, bilinear, atol=1e-5)


def test_frequency_latent_mean_by_default_sampling_on_request():
    model = small_model("arasfsr")
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        a, b = model.render(lr, (16, 16)), model.render(lr, (16, 16))
        assert torch.equal(a, b)
        model.sample = True
        c = model.render(lr, (16, 16))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("arch", [a for a in sorted(ARCHITECTURES)
                                  if issubclass(ARCHITECTURES[a], ImplicitSR)])
@pytest.mark.parametrize("size", [(23, 17), (20, 20)])  # 20 from 10: queries on code boundaries
def test_render_matches_the_authors_formulation(arch, size):
    from arasfsr.models.reference import reference_render

    model = small_model(arch)
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert (model.render(lr, size) - reference_render(model, lr, size)).abs().max() < 1e-5
