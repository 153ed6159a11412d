"""The independent oracle of the authors' code (``authors_reference.py``) checked on its own
and, where the project already computes the same function, against the project's models.

The cross-checks of the authors' formulations (ARASFSR ``variant="authors"``, their DIINN)
are in ``test_authors_variant.py``; here the oracle is fixed by invariants, by the paths it
shares with LIIF, with ARASFSR -G and with DIINN, and by the permutations a state-dict
mapping needs.
"""

import math

import pytest
import torch

from tools import authors_reference as ref
from tools.authors_mapping import (arasfsr_authors_to_ours, arasfsr_ours_to_authors, diinn_to_official,
                             encoder_to_authors, frequency_to_authors, pe_columns_ours_from_authors)
from arasfsr.models import create_model
from arasfsr.models.modulation import PositionalEncoding

TOY_ENCODER = {"n_resblocks": 1, "n_feats": 8}
HIDDEN = [16, 16, 16]
SIZES = [((7, 9), (13, 17)), ((10, 10), (15, 15)), ((6, 5), (24, 20))]  # 15/10: x1.5 ties


def _toy_inputs(lr_hw=(7, 9), hr_hw=(13, 17), batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lr = torch.rand(batch, 3, *lr_hw, generator=gen)
    coord = ref.make_coord(hr_hw).unsqueeze(0).expand(batch, -1, -1)
    cell = ref.make_cell(hr_hw, coord.shape[1]).unsqueeze(0).expand(batch, -1, -1)
    return lr, coord, cell


def test_query_rgb_shape_and_determinism():
    p = ref.random_authors_params(tokens=4, vae_width=8)
    lr, coord, cell = _toy_inputs()
    inp = (lr - 0.5) / 0.5
    feat = ref.gen_feat(p, inp)
    assert feat.shape == (2, 8 + 4, 7, 9)
    out = ref.query_rgb(p, feat, inp, coord, cell)
    assert out.shape == (2, 13 * 17, 3)
    assert torch.equal(out, ref.query_rgb(p, feat, inp, coord, cell))
    assert torch.isfinite(out).all()


def test_chunked_render_equals_one_pass():
    p = ref.random_authors_params()
    lr, _, _ = _toy_inputs()
    whole = ref.authors_render(p, lr, (13, 17), chunk=10**6)
    assert whole.shape == (2, 3, 13, 17)
    assert torch.allclose(whole, ref.authors_render(p, lr, (13, 17), chunk=50), atol=1e-6)


def test_ensemble_weights_are_positive_and_sum_to_one():
    feat = torch.randn(2, 5, 7, 6)
    coord = torch.rand(2, 300, 2) * 2 - 1
    _, weights = ref.local_ensemble(feat, coord, lambda f, rel, qc: f[..., :3])
    total = torch.stack(weights).sum(0)
    assert len(weights) == 4
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert all((w > 0).all() for w in weights)


def test_constant_decoder_leaves_the_skip():
    """Whatever the weights, a decoder that ignores its input gives that value plus the
    bilinear skip: the ensemble is a convex combination."""
    p = ref.random_authors_params()
    p["imnet.output_linear.weight"].zero_()
    lr, coord, cell = _toy_inputs()
    inp = (lr - 0.5) / 0.5
    with_skip = ref.query_rgb(p, ref.gen_feat(p, inp), inp, coord, cell)
    without = ref.query_rgb(p, ref.gen_feat(p, inp), inp, coord, cell, skip=False)
    bias = p["imnet.output_linear.bias"]
    assert torch.allclose(without, bias.expand_as(without), atol=1e-6)
    assert not torch.allclose(with_skip, without)


def test_positional_encoding_has_no_pi_and_is_a_permutation_of_ours():
    x = torch.rand(5, 2) * 2 - 1
    g = ref.positional_encoding(x, 10)
    assert g.shape == (5, 42)
    assert torch.allclose(g[:, :2], x)
    assert torch.allclose(g[:, 2:4], torch.sin(x))          # sin(2^0 x), both channels
    assert torch.allclose(g[:, 4:6], torch.cos(x))
    assert torch.allclose(g[:, 6:8], torch.sin(2 * x))
    with_pi = ref.positional_encoding(x, 10, with_pi=True)
    assert torch.allclose(with_pi[:, 2:4], torch.sin(math.pi * x))
    # Ours lays the same terms out per channel: [x, (sin, cos) per frequency of x_y, of x_x].
    ours = PositionalEncoding(2, 10)(x)
    perm = pe_columns_ours_from_authors(10)
    assert torch.allclose(ours, with_pi[:, perm], atol=1e-6)


def test_z_sampling_changes_tokens_and_zero_noise_is_the_mean():
    p = ref.random_authors_params(tokens=4, vae_width=8)
    lr, _, _ = _toy_inputs()
    inp = (lr - 0.5) / 0.5
    mean_tokens, mu, _ = ref.hfvae(p, inp)
    assert torch.equal(ref.hfvae(p, inp, torch.zeros_like(mu))[0], mean_tokens)
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(ref.hfvae(p, inp, noise)[0], mean_tokens)


def test_to_pil_levels_truncates():
    img = torch.tensor([0.0, 0.5, 0.999, 1.0, 254.6 / 255])
    assert ref.to_pil_levels(img).tolist() == [0, 127, 254, 255, 254]


def test_authors_checkpoint_maps_to_our_names_and_back():
    """The mapping the ``variant: authors`` cross-check uses: their names and layouts to
    ours (halves of the hidden layers swapped, first sine layer's columns permuted) and back."""
    p = ref.random_authors_params(n_resblocks=2, vae_blocks=2, hidden=(16, 12, 12))
    ours = arasfsr_authors_to_ours(p)
    assert ours["imnet.layers.0.weight"].shape == (16, (8 + 4) * 9 + 6)
    assert ours["imnet.layers.1.weight"].shape == (12, 32)
    assert ours["imnet.mods.0.weight"].shape == (16, 42)
    assert ours["imnet.mods.1.weight"].shape == (12, 16)  # chained: reads the previous sine layer
    assert ours["frequency.encoder.body.2.weight"].shape == (8, 8, 3, 3)  # HFVAE conv2
    assert "encoder.head.weight" in ours and "imnet.out.bias" in ours
    back = arasfsr_ours_to_authors(ours, blocks=2)
    assert back.keys() == p.keys()
    assert all(torch.equal(back[k], p[k]) for k in p)
    w = p["imnet.I.1.0.weight"]
    assert torch.equal(ours["imnet.layers.1.weight"][:, :16], w[:, 16:])  # ours [m, s], theirs [s, m]


# -- the oracle against the project where both compute the same function ----------------------
def _ours_render(model, lr, size, fast=False):
    with torch.no_grad():
        return model.render(lr, size, chunk_size=10**6, fast=fast)


@pytest.mark.parametrize("lr_hw,hr_hw", SIZES)
def test_oracle_liif_path_equals_our_liif(lr_hw, hr_hw):
    """Without tokens, modulation, q_coord and skip, their query_rgb is LIIF's (2r cell)."""
    torch.manual_seed(0)
    model = create_model("liif", encoder_args=TOY_ENCODER, hidden=HIDDEN).eval()
    sd = model.state_dict()
    p = {**encoder_to_authors(sd), **{k: v for k, v in sd.items() if k.startswith("imnet.")}}
    lr, _, _ = _toy_inputs(lr_hw, hr_hw, seed=1)
    theirs = ref.authors_render(p, lr, hr_hw, frequency=False, clamp=False, modulation=False,
                                q_coord_input=False, skip=False)
    for fast in (False, True):
        assert torch.allclose(theirs, _ours_render(model, lr, hr_hw, fast), atol=1e-5)


@pytest.mark.parametrize("lr_hw,hr_hw", SIZES)
def test_oracle_wo_glo_equals_our_arasfsr_G_with_the_cell_doubled(lr_hw, hr_hw):
    """Their -G (``asfsr_wo_glo``: tokens, skip, plain MLP, no q_coord) is our
    ``modulation=False`` once their weight on ``rel_cell = 2r`` is our weight on ``r`` / 2."""
    torch.manual_seed(0)
    model = create_model("arasfsr", encoder_args=TOY_ENCODER, hidden=HIDDEN, modulation=False,
                         tokens=4, frequency_width=8, frequency_blocks=1).eval()
    sd = model.state_dict()
    p = {**encoder_to_authors(sd), **frequency_to_authors(sd, 1),
         **{k: v.clone() for k, v in sd.items() if k.startswith("imnet.")}}
    p["imnet.layers.0.weight"][:, -2:] /= 2
    lr, _, _ = _toy_inputs(lr_hw, hr_hw, seed=2)
    theirs = ref.authors_render(p, lr, hr_hw, clamp=False, modulation=False, q_coord_input=False)
    for fast in (False, True):
        assert torch.allclose(theirs, _ours_render(model, lr, hr_hw, fast), atol=1e-5)


def _tie_lines(h: int, big_h: int) -> torch.Tensor:
    """Output rows whose centre lies exactly on an LR pixel boundary: (i + 1/2) h / H integer."""
    i = torch.arange(big_h)
    return ((2 * i + 1) * h) % (2 * big_h) == 0


@pytest.mark.parametrize("lr_hw,hr_hw", [((8, 6), (16, 12)), ((10, 10), (15, 15)), ((6, 4), (9, 10))])
def test_diinn_official_equals_our_diinn_ties_included(lr_hw, hr_hw):
    """DIINN's own decoder and ours read the same code everywhere, also on the output
    rows/columns whose centre lies on an LR pixel boundary (x1.5: every other row of 15)
    where ``nearest-exact`` takes the lower/right pixel; ``ties="even"`` (grid_sample's
    rounding, what diinn-a-cpu was trained with) differs there and only there."""
    torch.manual_seed(0)
    model = create_model("diinn", encoder_args=TOY_ENCODER, hidden=HIDDEN).eval()
    p = diinn_to_official(model.state_dict())
    lr, _, _ = _toy_inputs(lr_hw, hr_hw, seed=3)
    with torch.no_grad():
        feat = model.encoder((lr - 0.5) / 0.5)
    theirs = ref.diinn_official(p, feat, hr_hw) * 0.5 + 0.5
    for fast in (False, True):
        assert torch.allclose(theirs, _ours_render(model, lr, hr_hw, fast), atol=1e-5)
    model.ties = "even"
    diff = (theirs - _ours_render(model, lr, hr_hw, fast=True)).abs().amax(dim=(0, 1))
    off_tie = ~_tie_lines(lr_hw[0], hr_hw[0])[:, None] & ~_tie_lines(lr_hw[1], hr_hw[1])[None, :]
    assert (diff[off_tie] < 1e-5).all()
    if lr_hw == (10, 10):  # x1.5: the rounding to even disagrees on some tie rows
        assert diff[~off_tie].max() > 1e-3


def test_nearest_exact_ties_go_to_the_higher_index():
    """What ``diinn_official`` relies on: a centre on a boundary reads the next LR pixel."""
    h, big_h = 4, 6  # output centres (i + 1/2) * 4/6 hit 1 and 3 at i = 1 and 4
    src = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    idx = torch.nn.functional.interpolate(src, size=(big_h, 1), mode="nearest-exact").view(-1)
    assert idx.tolist() == [0, 1, 1, 2, 3, 3]
    assert _tie_lines(h, big_h).nonzero().view(-1).tolist() == [1, 4]


def test_authors_diinn_shapes_and_convexity():
    p = ref.random_diinn_params(code_dim=5 * 9, official=False)
    feat = torch.randn(2, 5, 7, 6)
    _, coord, cell = _toy_inputs((7, 6), (11, 9))
    out = ref.authors_diinn_query_rgb(p, feat, coord, cell)
    assert out.shape == (2, 99, 3)
    p["imnet.output_linear.weight"].zero_()
    flat = ref.authors_diinn_query_rgb(p, feat, coord, cell)
    assert torch.allclose(flat, p["imnet.output_linear.bias"].expand_as(flat), atol=1e-6)
