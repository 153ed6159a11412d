"""ARASFSR ``variant="authors"`` fixed against the independent oracle of the authors' code
(``authors_reference.py``, written from their ``asfsr.py``): random toy weights named as in
their checkpoints, mapped to ours with ``authors_mapping.py``, the same outputs to 1e-5."""

import pytest
import torch

import authors_reference as ref
from authors_mapping import arasfsr_authors_to_ours
from arasfsr.models import create_model

TOY = {"encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16, 16], "tokens": 4,
       "frequency_width": 8, "frequency_blocks": 1}
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
    sd = {k: v for k, v in arasfsr_authors_to_ours({k: v for k, v in p.items() if not k.startswith("imnet.")}).items()}
    for i in range(len(TOY["hidden"]) + 1):
        sd[f"imnet.layers.{2 * i}.weight"] = p[f"imnet.layers.{2 * i}.weight"]
        sd[f"imnet.layers.{2 * i}.bias"] = p[f"imnet.layers.{2 * i}.bias"]
    model.load_state_dict(sd)
    lr = _lr(lr_hw)
    theirs = ref.authors_render(p, lr, hr_hw, clamp=False, q_coord_input=False, modulation=False)
    with torch.no_grad():
        assert torch.allclose(model.render(lr, hr_hw, fast=False), theirs, atol=1e-5)
        assert torch.allclose(model.render(lr, hr_hw), theirs, atol=1e-5)
