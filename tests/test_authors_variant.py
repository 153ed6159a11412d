"""ARASFSR ``variant="authors"`` and the ARASFSR authors' DIINN fixed against the independent
oracle of their code (``authors_reference.py``, written from their ``asfsr.py`` and
``diinn.py``): random toy weights named as in their checkpoints, mapped to ours with
``authors_mapping.py``, the same outputs to 1e-5 at 3 sizes (one of them x1.5)."""

import pytest
import torch

from tools import authors_reference as ref
from tools.authors_mapping import arasfsr_authors_to_ours
from arasfsr.models import create_model
from arasfsr.registry import resolve

TOY = {"encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16, 16], "tokens": 4,
       "frequency_width": 8, "frequency_blocks": 1}
DIINN_TOY = {"encoder_args": TOY["encoder_args"], "hidden": TOY["hidden"]}
SIZES = [((7, 9), (13, 17)), ((10, 10), (15, 15)), ((6, 5), (24, 20))]  # 15/10: x1.5 ties


def _authors_model(seed: int = 0, **config):
    p = ref.random_authors_params(hidden=tuple(TOY["hidden"]), seed=seed)
    model = create_model("arasfsr", variant="authors", **{**TOY, **config}).eval()
    model.load_state_dict(arasfsr_authors_to_ours(p))  # strict: every shape matches theirs
    return p, model


def _lr(lr_hw, batch=2, seed=1):
    return torch.rand(batch, 3, *lr_hw, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("lr_hw, hr_hw", SIZES)
def test_authors_variant_equals_the_oracle(lr_hw, hr_hw):
    p, model = _authors_model()
    lr = _lr(lr_hw)
    theirs = ref.authors_render(p, lr, hr_hw, clamp=False)
    with torch.no_grad():
        plain = model.render(lr, hr_hw, fast=False)
        fast = model.render(lr, hr_hw)
        chunked = model.render(lr, hr_hw, chunk_size=37)
    assert torch.allclose(plain, theirs, atol=1e-5), (plain - theirs).abs().max()
    assert torch.allclose(fast, theirs, atol=1e-5), (fast - theirs).abs().max()
    assert torch.allclose(chunked, fast, atol=1e-6)


def test_authors_variant_differs_from_the_paper_formulation():
    """Not a relabelling: the paper's formulation with the same shared weights disagrees."""
    _, model = _authors_model()
    paper = create_model("arasfsr", **TOY).eval()
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("imnet.")}
    paper.load_state_dict(shared, strict=False)
    lr = _lr((7, 9))
    with torch.no_grad():
        assert (model.render(lr, (13, 17)) - paper.render(lr, (13, 17))).abs().max() > 1e-3
    assert model.imnet.layers[0].in_features == paper.imnet.layers[0].in_features + 2  # q_coord
    assert model.imnet.mods[1].in_features == TOY["hidden"][0]  # chained sine layers
    assert paper.imnet.mods[1].in_features == paper.pe.out_dim


def test_sampled_z_equals_the_oracle_with_the_same_noise():
    p, model = _authors_model()
    model.sample, model.sample_seed = True, 5
    lr = _lr((7, 9))
    mu_shape = (TOY["frequency_width"], 7, 9)
    eps = torch.randn(mu_shape, generator=torch.Generator().manual_seed(5)).expand(2, *mu_shape)
    theirs = ref.authors_render(p, lr, (13, 17), eps=eps, clamp=False)
    mean = ref.authors_render(p, lr, (13, 17), clamp=False)
    with torch.no_grad():
        ours = model.render(lr, (13, 17))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert (theirs - mean).abs().max() > 1e-3  # the draw matters at this toy size


def test_seeded_sampling_is_reproducible_and_batch_independent():
    _, model = _authors_model()
    model.sample = True
    lr = _lr((7, 9), batch=3)
    with torch.no_grad():
        model.sample_seed = 0
        batch = model.render(lr, (13, 17))
        alone = model.render(lr[2:], (13, 17))
        again = model.render(lr, (13, 17), fast=False)
        model.sample_seed = 1
        other = model.render(lr, (13, 17))
        model.sample = False
        mean = model.render(lr, (13, 17))
    assert torch.allclose(batch[2:], alone, atol=1e-6)
    assert torch.allclose(batch, again, atol=1e-5)  # fast and plain paths draw the same z
    assert (batch - other).abs().max() > 1e-4
    assert (batch - mean).abs().max() > 1e-4


@pytest.mark.parametrize("lr_hw, hr_hw", SIZES[:1])
def test_authors_minus_G_is_their_wo_glo(lr_hw, hr_hw):
    """Their -G has no q_coord and no encoding; the variant then only doubles the cell."""
    p = ref.random_authors_params(hidden=tuple(TOY["hidden"]), variant="asfsr_wo_glo")
    model = create_model("arasfsr", variant="authors", modulation=False, **TOY).eval()
    mlp = {k: v for k, v in p.items() if k.startswith("imnet.")}  # their plain mlp has our names
    model.load_state_dict({**arasfsr_authors_to_ours({k: v for k, v in p.items() if k not in mlp}), **mlp})
    lr = _lr(lr_hw)
    theirs = ref.authors_render(p, lr, hr_hw, clamp=False, q_coord_input=False, modulation=False)
    with torch.no_grad():
        assert torch.allclose(model.render(lr, hr_hw, fast=False), theirs, atol=1e-5)
        assert torch.allclose(model.render(lr, hr_hw), theirs, atol=1e-5)


@pytest.mark.parametrize("lr_hw, hr_hw", SIZES)
def test_diinn_arasfsr_preset_is_the_arasfsr_authors_diinn(lr_hw, hr_hw):
    """Table 1's DIINN as the paper made it (the ARASFSR authors' models/diinn.py):
    4-neighbour ensemble, positional input [rel_coord, rel_cell = 2r]; no skip."""
    torch.manual_seed(0)
    model = create_model("diinn", **{**resolve("e-diinn-arasfsr").config, **DIINN_TOY}).eval()
    sd = model.state_dict()
    p = {f"imnet.{'K' if k.startswith('content.') else 'Q'}.{k.split('.')[1]}.0.{k.split('.')[2]}": v
         for k, v in sd.items() if k.startswith(("content.", "position."))}
    p.update({f"imnet.output_linear.{k.split('.')[1]}": v for k, v in sd.items() if k.startswith("out.")})
    lr = _lr(lr_hw)
    coord = ref.make_coord(hr_hw).unsqueeze(0).expand(2, -1, -1)
    cell = ref.make_cell(hr_hw, coord.shape[1]).unsqueeze(0).expand(2, -1, -1)
    with torch.no_grad():
        feat = model.encoder((lr - 0.5) / 0.5)
        theirs = ref.authors_diinn_query_rgb(p, feat, coord, cell) * 0.5 + 0.5
        theirs = theirs.transpose(1, 2).reshape(2, 3, *hr_hw)
        for fast in (False, True):
            ours = model.render(lr, hr_hw, fast=fast)
            assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert model.position[0].in_features == 4
