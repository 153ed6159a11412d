"""Model names, presets, recorded configs and checkpoint validation.

One resolver interprets every model name; presets and tier sizes are declared beside
their model class; a model's config is recorded from its constructor's signature and
checked before anything is built; a damaged or hostile checkpoint is a clean ModelError
(exit 2 in the CLI), never a traceback. The bad checkpoints are generated here.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import arasfsr
from arasfsr import InputError, ModelError
from arasfsr.architectures import ARCHITECTURES, PRESETS, TIERS, preset, register_model
from arasfsr.checkpoint import load_checkpoint, save_checkpoint
from arasfsr.cli.main import main
from arasfsr.models import create_model
from arasfsr.models.liif import LIIF
from arasfsr.defaults import DEFAULT_FACE_MODEL
from arasfsr.registry import (DEFAULT_MODEL, RESEARCH_DIR, WEIGHTS_DIR, check_config, list_models, research_models,
                              resolve, tier_sizes)
from arasfsr.training.config import merge

SRC = Path(__file__).resolve().parents[1] / "src"


def smoke_model(arch: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(arch, **{**tier_sizes(arch, "smoke"), **extra}).eval()


# --- names -------------------------------------------------------------------------


def test_registry_and_the_default_listing_do_not_import_torch():
    code = ("import sys, arasfsr.registry as r; rows = r.list_models(); r.resolve('arasfsr'); "
            "print(len(rows), 'bicubic' in rows, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC)}, check=True).stdout.split()
    assert out[1:] == ["True", "False"] and int(out[0]) > 1


def test_listing_shows_shipped_models_and_presets_only_on_request():
    shipped = list_models()
    assert next(iter(shipped)) == DEFAULT_MODEL and shipped["bicubic"]["trained"]
    assert all(row["trained"] for row in shipped.values()) and "e-arasfsr" not in shipped
    everything = list_models(include_presets=True)
    assert everything["e-arasfsr"] == {"arch": "arasfsr", "trained": False,
                                       "description": "ARASFSR, EDSR-baseline encoder (paper)"}
    assert set(shipped) < set(everything)


def test_the_package_ships_the_default_model_and_the_research_models_stay_in_the_repository():
    # The wheel carries what users of the CLI, the API and the web app need; the research
    # models (paper tables, ablations, cpu-tier reproductions) are found in a checkout.
    assert {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")} == {DEFAULT_MODEL, DEFAULT_FACE_MODEL, "bicubic"}
    from tools.weights import research_manifest

    assert research_models() == research_manifest()  # the package's list of them is current
    entry = resolve("arasfsr-a")
    assert entry.trained and entry.weights.parent == RESEARCH_DIR and "arasfsr-a" in list_models()


def test_an_installation_without_the_research_models_says_where_they_are(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("arasfsr.registry.RESEARCH_DIR", tmp_path / "none")  # an installed wheel
    assert set(list_models()) == {DEFAULT_MODEL, DEFAULT_FACE_MODEL, "bicubic"}
    with pytest.raises(ModelError, match=r"^'liif-a' is a research model: .*weights/research/.*clone the repository"):
        resolve("liif-a")
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and "arasfsr-a, " in out[-1] and "clone the repository" in out[-1]
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--scale", "2",
                 "--model", "arasfsr-L-a-cpu"]) == 2
    assert not (tmp_path / "out.png").exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "research model" in err


def test_resolve_names_presets_architectures_and_paths(tmp_path):
    shipped = resolve("liif-a-cpu")
    assert (shipped.kind, shipped.arch, shipped.trained) == ("shipped", "liif", True)
    assert shipped.config["hidden"] == [64, 64, 64] and shipped.card["tier"] == "cpu"
    p = resolve("e-arasfsr-L")
    assert (p.kind, p.arch, p.config, p.weights) == ("preset", "arasfsr", {"encoder": "edsr-baseline",
                                                                          "frequency": False}, None)
    a = resolve("lte")
    assert (a.kind, a.arch, a.config) == ("architecture", "lte", {})
    path = save_checkpoint(smoke_model("diinn"), tmp_path / "mine.safetensors", card={"description": "mine"})
    f = resolve(str(path))
    assert (f.kind, f.name, f.arch, f.description, f.weights) == ("file", "mine", "diinn", "mine", path)
    with pytest.raises(ModelError, match=r"^unknown model 'nope'; `arasfsr models` lists the names$"):
        resolve("nope")
    with pytest.raises(ModelError, match="no trained weights for 'e-liif' are shipped"):
        resolve("e-liif", trained=True)
    with pytest.raises(ModelError, match="no such checkpoint file"):
        resolve(tmp_path / "missing.safetensors")


def test_every_shipped_model_is_its_card_preset_at_its_tier_sizes():
    # The tier sizes declared beside the model classes rebuild exactly the shipped networks
    # (what `train --init` with a shipped model needs).
    for name in list_models():
        entry = resolve(name)
        if entry.arch == "bicubic":
            continue
        spec = resolve(entry.card["model"])
        want = merge(spec.config, tier_sizes(spec.arch, entry.card["tier"]))
        assert check_config(spec.arch, want) == check_config(entry.arch, entry.config), name


def test_every_architecture_declares_cpu_and_smoke_sizes_that_build():
    for arch in ARCHITECTURES:
        if arch == "bicubic":
            continue
        assert set(TIERS[arch]) == {"cpu", "smoke"}, arch
        for tier in ("cpu", "smoke"):
            create_model(arch, **tier_sizes(arch, tier))


# --- configs recorded from the signature --------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_checkpoint_round_trip_of_every_architecture(arch, tmp_path):
    model = smoke_model(arch)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.safetensors"))
    assert type(loaded) is type(model) and loaded.config == model.config
    lr = torch.rand(1, 3, 9, 8)
    with torch.no_grad():
        assert torch.equal(model.render(lr, (21, 17)), loaded.render(lr, (21, 17)))


def test_config_holds_every_constructor_argument_with_its_default():
    import inspect

    for arch, cls in ARCHITECTURES.items():
        params = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        assert list(create_model(arch).config) == params, arch
    assert create_model("liif", hidden=(8, 8)).config == {"encoder": "edsr-baseline", "encoder_args": {},
                                                         "hidden": [8, 8]}


@pytest.fixture
def scratch_registry():
    saved = [dict(table) for table in (ARCHITECTURES, PRESETS, TIERS)]
    yield
    for table, before in zip((ARCHITECTURES, PRESETS, TIERS), saved):
        table.clear()
        table.update(before)


def test_a_new_model_and_argument_need_no_code_outside_the_model(scratch_registry, tmp_path):
    @register_model(presets={"tiny-gain": preset("LIIF with an output gain", hidden=[8], gain=0.5)})
    class GainLIIF(LIIF):
        arch = "gain-liif"

        def __init__(self, hidden: list[int] = (16,), gain: float = 1.0) -> None:
            super().__init__(encoder_args=tier_sizes("liif", "smoke")["encoder_args"], hidden=hidden)
            self.gain = gain

    up = arasfsr.load_model("tiny-gain", pretrained=False)
    assert up.model.config == {"hidden": [8], "gain": 0.5}
    path = save_checkpoint(up.model, tmp_path / "g.safetensors")
    back = load_checkpoint(path)
    assert type(back) is GainLIIF and back.gain == 0.5 and back.config == up.model.config
    with pytest.raises(ModelError, match="gain must be a finite number"):
        create_model("gain-liif", gain="loud")


@pytest.mark.parametrize("config, words", [
    ({"tokens": "eight"}, "tokens must be an integer from 1 to 65536, got 'eight'"),
    ({"hidden": [-5, 256]}, "hidden[0] must be an integer from 1 to 65536, got -5"),
    ({"hidden": [10 ** 9]}, "hidden[0] must be an integer"),
    ({"hidden": []}, "hidden must be a non-empty list"),
    ({"tokens": True}, "tokens must be an integer"),
    ({"skip": "no"}, "skip must be true or false"),
    ({"encoder": "os.system"}, "unknown encoder 'os.system'"),
    ({"encoder_args": {"n_feats": 0}}, "n_feats must be an integer from 1"),
    ({"encoder_args": {"shell": "rm"}}, "unknown key 'shell'"),
    ({"encoder_args": [1]}, "encoder_args must be a mapping"),
    ({"colour": 3}, "unknown key 'colour'"),
])
def test_bad_configs_are_refused_before_building(config, words):
    with pytest.raises(ModelError) as err:
        create_model("arasfsr", **config)
    assert words in str(err.value) and "\n" not in str(err.value)


# --- old checkpoints -----------------------------------------------------------------


# Measured with the code before the registry rewrite (commit 907f8e8): sum of the fp32
# render of a fixed input and the RGB at two pixels, for the weights of that SHA-256 prefix.
# arasfsr is retrained by the background trainer; after a ship, re-measure its values with
# today's code (unchanged by the ship) and its new hash.
GOLDEN = {"arasfsr": ("31cda0a77eb5", 4989.743, [0.32442, 0.21164, 0.33858], [0.65097, 0.62295, 0.52336]),
          "liif-a-cpu": ("0e6f9f6728c4", 4979.972, [0.36471, 0.31602, 0.28745], [0.69424, 0.50986, 0.44274])}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_shipped_checkpoints_load_unchanged_and_give_the_same_images(name):
    from arasfsr.evaluation.runner import weights_sha256

    sha, total, a, b = GOLDEN[name]
    assert weights_sha256(name).startswith(sha), f"{name} was retrained: re-measure its GOLDEN values"
    lr = torch.from_numpy(np.random.default_rng(0).random((1, 3, 24, 20), dtype=np.float32))
    model = arasfsr.load_model(name, precision="fp32").model
    with torch.no_grad():
        out = model.render(lr, (53, 61), precision="fp32")
    assert abs(float(out.double().sum()) - total) < 0.01
    assert np.allclose(out[0, :, 10, 20].numpy(), a, atol=2e-5)
    assert np.allclose(out[0, :, 40, 50].numpy(), b, atol=2e-5)


# --- bad checkpoints -------------------------------------------------------------------


def _tiny() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    model = smoke_model("arasfsr")
    return dict(model.state_dict()), {"arasfsr.arch": "arasfsr", "arasfsr.config": json.dumps(model.config)}


def _with_config(**change) -> tuple[dict, dict]:
    tensors, meta = _tiny()
    return tensors, {**meta, "arasfsr.config": json.dumps({**json.loads(meta["arasfsr.config"]), **change})}


def _with_tensor(key: str, value) -> tuple[dict, dict]:
    tensors, meta = _tiny()
    tensors = dict(tensors)
    if value is None:
        del tensors[key]
    else:
        tensors[key] = value(tensors.get(key))
    return tensors, meta


def _raw(header: object, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


FIRST = "encoder.head.weight"
BAD_CHECKPOINTS = {
    "wrong shape": (lambda: _with_tensor(FIRST, lambda t: torch.zeros(t.shape[0] + 1, *t.shape[1:])),
                    "has shape"),
    "missing tensor": (lambda: _with_tensor(FIRST, None), "missing 1"),
    "extra tensor": (lambda: _with_tensor("intruder", lambda t: torch.zeros(2)), "unexpected 1"),
    "integer weights": (lambda: _with_tensor(FIRST, lambda t: t.to(torch.int32)), "is I32"),
    "nan weights": (lambda: _with_tensor(FIRST, lambda t: t.clone().fill_(float("nan"))), "NaN"),
    "inf weights": (lambda: _with_tensor(FIRST, lambda t: t.clone().fill_(float("inf"))), "infinite"),
    "config not json": (lambda: (_tiny()[0], {"arasfsr.arch": "arasfsr", "arasfsr.config": "{hidden: 16"}),
                        "not JSON"),
    "config a json list": (lambda: (_tiny()[0], {"arasfsr.arch": "arasfsr", "arasfsr.config": "[16, 16]"}),
                           "must be a JSON object, got list"),
    "negative width": (lambda: _with_config(hidden=[-5, 256]), "hidden[0] must be an integer"),
    "encoder is code": (lambda: _with_config(encoder="os.system"), "unknown encoder 'os.system'"),
    "tokens in words": (lambda: _with_config(tokens="eight"), "tokens must be an integer"),
    "unknown key": (lambda: _with_config(colour=3), "unknown key 'colour'"),
    "unknown architecture": (lambda: (_tiny()[0], {"arasfsr.arch": "resnet", "arasfsr.config": "{}"}),
                             "unknown architecture 'resnet'"),
    "empty file": (lambda: b"", "unreadable safetensors header"),
    "header past the end": (lambda: struct.pack("<Q", 10 ** 6) + b"{}", "does not fit the file"),
    "header not json": (lambda: struct.pack("<Q", 4) + b"{{{{", "unreadable safetensors header"),
    "header a list": (lambda: _raw([1, 2]), "header is not a JSON object"),
    "metadata not strings": (lambda: _raw({"__metadata__": {"arasfsr.arch": 5}}), "must be strings"),
    "tensor without shape": (lambda: _raw({"__metadata__": {"arasfsr.arch": "bicubic"}, "t": {"dtype": "F32"}}),
                             "no valid dtype and shape"),
    "offsets past the end": (lambda: _raw({"__metadata__": {"arasfsr.arch": "liif", "arasfsr.config": "{}"},
                                           **{k: {"dtype": "F32", "shape": list(v.shape), "data_offsets": [0, 4]}
                                              for k, v in create_model("liif").state_dict().items()}}),
                             "cannot read its weights"),
}


def _write(tmp_path: Path, case: str) -> Path:
    made = BAD_CHECKPOINTS[case][0]()
    path = tmp_path / "bad.safetensors"
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        tensors, meta = made
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_a_clear_model_error(case, tmp_path):
    path = _write(tmp_path, case)
    with pytest.raises(ModelError) as err:
        arasfsr.load_model(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: not a valid arasfsr checkpoint: ") and "\n" not in message
    assert BAD_CHECKPOINTS[case][1] in message


CLI_CASES = ["wrong shape", "config not json", "config a json list", "negative width", "encoder is code",
             "tokens in words"]


@pytest.mark.parametrize("command, case", [("upscale", c) for c in CLI_CASES + ["nan weights"]]
                         + [("info", c) for c in CLI_CASES])  # --info does not read the weights
def test_bad_checkpoint_exits_2_in_the_cli(command, case, tmp_path, capsys):
    from PIL import Image

    path = _write(tmp_path, case)
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    argv = {"upscale": ["upscale", img, "-o", tmp_path / "out.png", "--scale", "2", "--model", path],
            "info": ["models", "--info", path]}[command]
    assert main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("arasfsr: error: ") and "not a valid arasfsr checkpoint" in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "in.png"]


# --- runtime options -----------------------------------------------------------------


def test_bad_precision_and_chunk_size_are_input_errors():
    with pytest.raises(InputError, match="precision must be one of auto, fp32, bf16, got 'fp64'"):
        arasfsr.load_model("bicubic", precision="fp64")
    up = arasfsr.load_model("liif-a-cpu")
    img = np.zeros((8, 8, 3), np.uint8)
    for bad in (-1, 0, 2.5, "8", True):
        with pytest.raises(InputError, match="chunk_size must be a positive integer"):
            up.upscale(img, scale=2, chunk_size=bad)
    assert up.upscale(img, scale=2, chunk_size=np.int64(7)).shape == (16, 16, 3)


def test_training_config_model_is_checked_when_loaded():
    from arasfsr.training import load_config

    with pytest.raises(InputError, match=r"config model 'e-liif': .*hidden\[0\] must be an integer"):
        load_config("smoke/A-liif", ["model_args.hidden=[-5, 16]"])
    with pytest.raises(InputError, match="unknown model 'no-such'"):
        load_config("smoke/A-liif", ["model=no-such"])


def test_a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    model = smoke_model("liif")
    for pad in range(256):  # metadata padding until the header length's low byte is 0x80
        path = tmp_path / "m.safetensors"
        save_file(model.state_dict(), str(path), metadata={"arasfsr.arch": "liif", "pad": "x" * pad,
                                                           "arasfsr.config": json.dumps(model.config)})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert load_checkpoint(path).config == model.config


@pytest.mark.parametrize("override", ["model_args=5", "model_args.tokens=eight", "model=[1, 2]",
                                      "tier_model_args={arasfsr: 3}"])
def test_bad_model_settings_in_a_training_config_are_input_errors(override):
    from arasfsr.training import load_config

    with pytest.raises(InputError, match="config (model|tier_model_args)"):
        load_config("smoke/A-arasfsr", [override])
