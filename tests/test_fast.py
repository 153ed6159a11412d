"""Fast inference path vs the authors' formulation, chunking, precision, ONNX export."""

import math

import numpy as np
import pytest
import torch

from arasfsr.cli.main import main
from arasfsr.models import ImplicitSR, create_model
from arasfsr.models.core import coord_range, make_coord, plan_tiles
from arasfsr.models.reference import reference_render
from arasfsr.runtime import auto_chunk_size

SMALL = {"encoder_args": {"n_resblocks": 2, "n_feats": 16}, "hidden": [32, 32]}
CONFIGS = {
    "arasfsr": ("arasfsr", {**SMALL, "frequency_width": 16, "frequency_blocks": 1}),
    "arasfsr-L": ("arasfsr", {**SMALL, "frequency": False}),
    "arasfsr-G": ("arasfsr", {**SMALL, "frequency_width": 16, "frequency_blocks": 1, "modulation": False}),
    "arasfsr-S": ("arasfsr", {**SMALL, "frequency_width": 16, "frequency_blocks": 1, "skip": False}),
    "liif": ("liif", SMALL),
    "lte": ("lte", {**SMALL, "hidden_dim": 16}),
    "diinn": ("diinn", SMALL),
    "diinn-ensemble": ("diinn", {**SMALL, "local_ensemble": True}),
    "arasfsr-authors": ("arasfsr", {**SMALL, "frequency_width": 16, "frequency_blocks": 1, "variant": "authors"}),
    "arasfsr-authors-G": ("arasfsr", {**SMALL, "frequency_width": 16, "frequency_blocks": 1, "variant": "authors",
                                      "modulation": False}),
    "arasfsr-authors-L": ("arasfsr", {**SMALL, "frequency": False, "variant": "authors"}),
    "diinn-arasfsr": ("diinn", {**SMALL, "local_ensemble": True, "position_input": "cell"}),
    "diinn-even": ("diinn", {**SMALL, "ties": "even"}),
}


def small(name: str) -> ImplicitSR:
    torch.manual_seed(0)
    arch, config = CONFIGS[name]
    return create_model(arch, **config).eval()


def realistic(model: ImplicitSR) -> ImplicitSR:
    """Weights whose activations keep their scale through the layers (He init) and whose
    output spans an image's range, as a trained decoder's do; default (shrinking) random
    weights would make reduced precision look better than it is."""
    torch.manual_seed(1)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for m in linears:
        torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if m.bias is not None:
            torch.nn.init.normal_(m.bias, std=0.1)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        if hasattr(model, "freq"):  # LTE: frequencies of a few half-periods per LR pixel (std ~2.5)
            model.freq.weight.mul_(10)
        out = model.render(lr, (24, 24), precision="fp32")
        # Rescale the decoder's output layer so the image has a face-like spread (std ~0.25).
        head = [m for m in linears if m.out_features == 3][-1]
        head.weight.mul_(0.25 / float(out.std()))
    return model


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("lr_hw,size", [((11, 9), (37, 23)), ((8, 8), (64, 64)), ((10, 12), (7, 5))])
def test_fast_path_equals_authors_formulation(name, lr_hw, size):
    model = small(name)
    assert model.has_fast_path
    lr = torch.rand(2, 3, *lr_hw)
    with torch.no_grad():
        ref = reference_render(model, lr, size)
        fast = model.render(lr, size, precision="fp32")
        plain = model.render(lr, size, fast=False)
    assert (fast - ref).abs().max() < 1e-4
    assert (plain - ref).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["arasfsr", "arasfsr-authors", "liif", "lte", "diinn", "diinn-ensemble"])
def test_bf16_stays_above_50db_on_realistic_weights(name, monkeypatch):
    from arasfsr.models import fused

    model = realistic(small(name))
    seen = []  # the dtypes the decoder's layers compute in: nn.Linear modules and fused products
    for layer in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
        layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    product = fused._linear
    monkeypatch.setattr(fused, "_linear", lambda *args: seen.append(args[0].dtype) or product(*args))
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = reference_render(model, lr, (64, 64))
        seen.clear()
        fp32 = model.render(lr, (64, 64), precision="fp32")
        assert set(seen) == {torch.float32}
        seen.clear()
        bf16 = model.render(lr, (64, 64), precision="bf16")
    assert torch.bfloat16 in seen  # bf16 was really used...
    assert ref.std() > 0.1  # the output really spans a range
    # ...and shows: fp32 is the reference to float rounding, bf16 (8-bit mantissa) is reduced, yet close.
    assert psnr(fp32, ref) > 120
    assert 50 < psnr(bf16, ref) < 90


@pytest.mark.parametrize("name", ["arasfsr", "arasfsr-authors"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_chunk_size_does_not_change_the_output(name, precision):
    model = small(name)
    lr = torch.rand(3, 3, 9, 10)
    with torch.no_grad():
        outs = [model.render(lr, (31, 29), chunk, precision=precision) for chunk in (16, 97, 10**6)]
    assert (outs[0] - outs[2]).abs().max() < 1e-6
    assert (outs[1] - outs[2]).abs().max() < 1e-6


def test_coord_range_is_a_slice_of_make_coord():
    full = make_coord((7, 5))
    assert torch.equal(coord_range(7, 5, 3, 29), full[3:29])


def test_auto_chunk_size_follows_the_free_memory(monkeypatch):
    import arasfsr.runtime as runtime

    monkeypatch.setattr(runtime, "available_memory", lambda device: 8 << 20)  # 8 MiB free: 1 MiB per chunk
    assert auto_chunk_size(100) == runtime.PREFERRED_CHUNK["cpu"]  # fits: the cache-sized chunk
    assert auto_chunk_size(1000) == (1 << 20) // 1000  # an eighth of the free memory
    assert auto_chunk_size(2000) == (1 << 20) // 2000
    assert auto_chunk_size(10**9) == runtime.MIN_CHUNK  # never below the floor
    assert auto_chunk_size(10, "cuda") == runtime.PREFERRED_CHUNK["cuda"]  # GPUs take big chunks
    assert auto_chunk_size(100, itemsize=2) == 2 * runtime.PREFERRED_CHUNK["cpu"]  # bf16: the same bytes


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stacked_training_query_has_the_reference_loops_gradients(name):
    """Training decodes the four neighbours as one stack; its loss and every parameter's
    gradient are those of the authors' loop over the neighbours (models/reference.py)."""
    from arasfsr.models.core import normalise, scale_ratio
    from arasfsr.models.reference import reference_query

    model = small(name).train()
    lr = torch.rand(2, 3, 9, 11)
    coord = make_coord((20, 17)).unsqueeze(0).expand(2, -1, -1)
    ratio = scale_ratio((9, 11), (20, 17), 2, lr.device)
    grads = []
    for query in (model.query, lambda st, c, r: reference_query(model, st, c, r)):
        model.zero_grad()
        torch.manual_seed(0)  # the same z samples (ARASFSR's frequency module) in both passes
        out = query(model.encode(normalise(lr)), coord, ratio)
        (out ** 2).mean().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6), k


def test_fast_path_keeps_training_gradients_on_the_plain_path():
    model = small("arasfsr").train()
    lr = torch.rand(1, 3, 8, 8)
    coord = make_coord((16, 16)).unsqueeze(0)
    out = model(lr, coord, torch.tensor([[0.5, 0.5]]))
    out.mean().backward()
    assert model.imnet.mods[0].weight.grad is not None


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_render_runs_under_autograd(precision):
    """render() without no_grad (as a user's script may call it) gives what inference gives,
    with gradients: products with out= (the fast path's) are not differentiable."""
    model = small("arasfsr")
    lr = torch.rand(1, 3, 8, 8)
    out = model.render(lr, (16, 16), precision=precision)
    out.mean().backward()
    assert model.imnet.mods[0].weight.grad is not None
    with torch.no_grad():
        assert (out - model.render(lr, (16, 16), precision=precision)).abs().max() < 2e-3


ONNX_MODELS = ("arasfsr", "arasfsr-authors", "liif", "lte", "diinn", "diinn-ensemble", "diinn-arasfsr")


@pytest.fixture(scope="module")
def onnx_models():
    pytest.importorskip("onnxruntime")
    from arasfsr.onnx_engine import OnnxEngine, export_onnx

    out = {}
    for name in ONNX_MODELS:
        model = small(name)
        out[name] = (model, OnnxEngine(export_onnx(model, lr_hw=(16, 16), queries=64)))
    return out


@pytest.mark.parametrize("name", ONNX_MODELS)
@pytest.mark.parametrize("lr_hw,size", [((11, 9), (37, 23)), ((20, 24), (50, 90))])
def test_onnx_matches_pytorch_at_other_sizes(onnx_models, name, lr_hw, size):
    model, engine = onnx_models[name]
    lr = torch.rand(2, 3, *lr_hw)
    with torch.no_grad():
        ref = model.render(lr, size, precision="fp32")
    assert (engine.render(lr, size, chunk_size=500) - ref).abs().max() < 1e-4


def test_onnx_export_refuses_z_sampling():
    pytest.importorskip("onnxruntime")
    from arasfsr.errors import ModelError
    from arasfsr.onnx_engine import export_onnx

    model = small("arasfsr-authors")
    model.sample = True
    with pytest.raises(ModelError, match="mean"):
        export_onnx(model)


@pytest.mark.parametrize("name", ["liif", "lte", "diinn"])
def test_export_and_upscale_with_onnx_engine(tmp_path, capsys, name):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from PIL import Image

    from arasfsr.api import Upscaler, load_model

    model = small(name)
    from arasfsr.checkpoint import save_checkpoint

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(model, ckpt)
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(ckpt), "--onnx", str(onnx_path)]) == 0
    assert main(["export", "--model", str(ckpt), "--onnx", str(onnx_path)]) == 2  # no overwrite
    img = Image.fromarray((np.random.default_rng(0).random((10, 12, 3)) * 255).astype("uint8"))
    img.save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--scale", "2.5",
                 "--engine", "onnx", "--model", str(onnx_path)]) == 0
    got = np.asarray(Image.open(tmp_path / "out.png"))
    want = np.asarray(Upscaler(model, "tiny", precision="fp32").upscale(img, scale=2.5))
    assert got.shape == want.shape == (25, 30, 3)
    assert np.abs(got.astype(int) - want).max() <= 1
    assert load_model(str(onnx_path), engine="onnx").upscale(img, size=(7, 9)).size == (7, 9)


@pytest.mark.parametrize("lr_hw,out_hw", [((37, 50), (80, 111)), ((40, 40), (20, 33)), ((33, 17), (33, 17))])
def test_tiles_cover_every_output_pixel_once(lr_hw, out_hw):
    seen = torch.zeros(out_hw, dtype=torch.int32)
    tiles = plan_tiles(lr_hw, out_hw, side=12, margin=4)
    assert len(tiles) > 1
    for rows, cols, window, crop in tiles:
        seen[rows.start:rows.stop, cols.start:cols.stop] += 1
        assert crop[0].start <= window.y0 and window.y0 + window.h <= crop[0].stop
    assert bool((seen == 1).all())


@pytest.mark.parametrize("name", ["arasfsr", "liif", "lte", "diinn-ensemble"])
def test_tiled_encoder_equals_whole_on_small_models(name):
    model = small(name)
    lr = torch.rand(1, 3, 30, 26, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = model.render(lr, (67, 45), precision="fp32")
        tiled = model.render(lr, (67, 45), precision="fp32", tile=10)
    assert float((whole - tiled).abs().max()) < 1e-4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tile_seams_of_the_default_model_stay_above_50db(shared_data, precision):
    """The shipped encoder's receptive field vs TILE_MARGIN, on a real face tiled small."""
    from PIL import Image

    from arasfsr.api import images_to_tensor, load_model

    face = sorted((shared_data / "utkface" / "val").glob("*.jpg"))[0]
    lr = images_to_tensor(np.asarray(Image.open(face).convert("RGB").resize((40, 40), Image.BICUBIC))[None])
    model = load_model("arasfsr-a", precision=precision).model
    with torch.inference_mode():
        whole = model.render(lr, (60, 60), precision=precision).clamp(0, 1)
        tiled = model.render(lr, (60, 60), precision=precision, tile=16).clamp(0, 1)
    assert psnr(whole, tiled) >= 50


@pytest.mark.parametrize("fast", [True, False])
def test_a_batch_computes_the_modulation_once_and_renders_each_face_as_alone(fast, monkeypatch):
    """A batch renders one grid: ARASFSR's positional encoding and sine layers run once per
    pixel (fast path: once per row and per column), not once per pixel and face, and every
    face comes out as it does alone."""
    model = small("arasfsr")
    shapes = []
    plain_pe = model.pe.forward
    monkeypatch.setattr(model.pe, "forward", lambda x: shapes.append(x.shape) or plain_pe(x))
    lr = torch.rand(3, 3, 8, 10)
    with torch.no_grad():
        batch = model.render(lr, (24, 30), fast=fast, precision="fp32")
        assert shapes and all(len(s) == 2 or s[0] == 1 for s in shapes)  # (rows or columns, 2) or one face's
        assert fast == any(len(s) == 2 for s in shapes)
        alone = torch.cat([model.render(lr[i:i + 1], (24, 30), fast=fast, precision="fp32") for i in range(3)])
    assert (batch - alone).abs().max() < 1e-6


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_encoder_convolutions_compute_the_plain_ones(encoder, precision, monkeypatch):
    """The encoders and the frequency module in inference, their ReLUs and residual adds fused
    into oneDNN's convolutions, against the plain layers (what training runs)."""
    from arasfsr.models import fused

    torch.manual_seed(0)
    model = create_model("arasfsr", encoder=encoder, hidden=[16],
                         encoder_args={"n_resblocks": 2, "n_feats": 16} if encoder == "edsr-baseline"
                         else {"n_blocks": 2, "n_layers": 2, "growth": 8, "n_feats": 16},
                         frequency_width=16, frequency_blocks=2).eval()
    fused_calls = []
    fused_conv = fused._fused_conv

    def spy(*args):
        out = fused_conv(*args)
        fused_calls.append(out is not None)  # True: oneDNN's fused convolution computed it
        return out

    monkeypatch.setattr(fused, "_fused_conv", spy)
    lr = torch.rand(2, 3, 21, 17) * 2 - 1
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def encode():
        with torch.inference_mode(), torch.autocast("cpu", dtype, enabled=precision == "bf16"):
            inp = lr.contiguous(memory_format=torch.channels_last) if precision == "bf16" else lr
            return model.encode(inp).feat.float()

    fast = encode()
    assert fused_calls and all(fused_calls) and not fused._refused  # oneDNN really ran the fused convolutions
    monkeypatch.setattr(fused, "fusable", lambda x, post_op="none": False)
    plain = encode()
    assert fast.shape == plain.shape
    err = float((fast - plain).abs().max() / plain.abs().max())
    assert err < (1e-5 if precision == "fp32" else 2e-2)


def test_grid_modulations_add_a_rows_product_to_a_columns(monkeypatch):
    """The fast path's sine layers on a grid: per row and per column, the columns' products
    once per image (chunks are bands of whole rows), equal to the product per query."""
    from arasfsr.models.core import grid_axes, grid_coord

    model = small("arasfsr")
    ys, xs = grid_axes(24, 30, range(3, 9), range(30))
    g_rows = model.pe(torch.stack([ys, torch.zeros_like(ys)], -1))
    g_cols = model.pe(torch.stack([torch.zeros_like(xs), xs], -1)) - model.pe(torch.zeros(1, 2))
    with torch.no_grad():
        per_query = model.imnet.modulations(model.pe(grid_coord(ys, xs))[None])
        per_axis = model.imnet.grid_modulations(model.imnet.sine_products(g_rows),
                                                model.imnet.sine_products(g_cols, bias=False))
        for a, b in zip(per_query, per_axis):
            assert a.shape == b.shape and (a - b).abs().max() < 1e-5
        columns = []
        products = model.imnet.sine_products
        monkeypatch.setattr(model.imnet, "sine_products", lambda g, bias=True: columns.append(bias) or products(g, bias))
        model.render(torch.rand(1, 3, 8, 10), (24, 30), chunk_size=60, precision="fp32")
    assert columns.count(False) == 1 and columns.count(True) == 12  # 12 chunks of two rows


def test_a_tiled_render_hands_freed_memory_back_between_tiles(monkeypatch):
    """With freed blocks kept for reuse, a tiled render's resident memory crept up tile after
    tile; it trims the heap before every tile and after the last (a whole input: never)."""
    import arasfsr.models.core as core

    calls = []
    monkeypatch.setattr(core, "release_freed_memory", lambda: calls.append(1))
    model = small("arasfsr")
    lr = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        model.render(lr, (80, 80), precision="fp32")
        assert calls == []
        tiled = model.render(lr, (80, 80), precision="fp32", tile=16)
    assert len(calls) == len(plan_tiles((40, 40), (80, 80), 16, core.TILE_MARGIN)) + 1 == 10
    assert tiled.shape == (1, 3, 80, 80)
