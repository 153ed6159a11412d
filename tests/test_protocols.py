"""A protocol is one record, degradations one table, the data root one function, and the
config names shipped before configs were generated resolve exactly as their YAML files did."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import arasfsr.data
from arasfsr.cli.main import main
from arasfsr.data import resolve_data_root
from arasfsr.data.degrade import DEGRADATIONS, degrade
from arasfsr.errors import InputError
from arasfsr.evaluation.report import render_markdown
from arasfsr.evaluation.runner import EvalConfig, run_eval
from arasfsr.protocols import (PROTOCOLS, Protocol, TableLayout, TrainSpec, ValSpec, get_protocol,
                               make_pair, register_protocol)
from arasfsr.protocols import TestRow as Row  # (a "Test" name pytest would try to collect)
from arasfsr.training import list_configs, load_config, train

ROOT = Path(__file__).resolve().parents[1]


def _face(seed: int = 0, size: tuple[int, int] = (72, 60)) -> Image.Image:
    """A smooth synthetic picture with some texture (what resizes and JPEG act on)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y), np.sin(4 * (x + y))], -1) * 90 + 128
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- degradations


def _old_mixture(img, size, rng):
    """arasfsr.data.mixture.random_degradation as it was before issue 12, verbatim in effect."""
    def jpeg(im, quality):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    pick = rng.random()
    if pick < 0.25:
        return img.resize(size, Image.BICUBIC)
    if pick < 0.5:
        return jpeg(img.resize(size, Image.NEAREST), 65)
    out = img.resize(size, (Image.BICUBIC, Image.BILINEAR, Image.NEAREST)[int(rng.integers(3))])
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.5:
        arr = np.asarray(out, dtype=np.float32)
        noisy = arr + rng.normal(0.0, float(rng.uniform(1.0, 10.0)), arr.shape).astype(np.float32)
        out = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out


def test_degradations_are_one_table_with_one_signature():
    assert set(DEGRADATIONS) == {"bicubic", "nn-jpeg", "mixture", "realistic"}
    img = _face()
    for kind, fn in DEGRADATIONS.items():
        out = fn(img, (20, 16), np.random.default_rng(0))
        assert out.size == (20, 16) and out.mode == "RGB", kind
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, (20, 16), "blur")


@pytest.mark.parametrize("size", [(17, 23), (36, 30), (144, 120)])
def test_bicubic_and_nn_jpeg_are_bit_identical_to_before(size):
    img = _face(1)
    assert np.array_equal(np.asarray(degrade(img, size, "bicubic")), np.asarray(img.resize(size, Image.BICUBIC)))
    buf = io.BytesIO()
    img.resize(size, Image.NEAREST).save(buf, format="JPEG", quality=65)
    before = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    rng = np.random.default_rng(5)
    assert np.array_equal(np.asarray(degrade(img, size, "nn-jpeg", rng)), before)
    assert rng.random() == np.random.default_rng(5).random()  # the fixed kinds draw nothing


def test_mixture_draws_what_it_drew_before():
    img = _face(2)
    for seed in range(48):  # every branch of the mixture is taken in these seeds
        new, old = np.random.default_rng([seed, 3]), np.random.default_rng([seed, 3])
        a = degrade(img, (24, 20), "mixture", new)
        b = _old_mixture(img, (24, 20), old)
        assert np.array_equal(np.asarray(a), np.asarray(b)), seed
        assert new.random() == old.random(), seed  # and leaves the generator where it did


def test_evaluation_can_use_the_mixture_reproducibly():
    row = Row("faces", 16, 48, "mixture")
    first = make_pair(_face(3), row)
    assert all(np.array_equal(a, b) for a, b in zip(first, make_pair(_face(3), row)))
    lrs = {make_pair(_face(s), row)[0].tobytes() for s in range(6)}
    assert len(lrs) == 6 and first[0].shape == (16, 16, 3) and first[1].shape == (48, 48, 3)


def test_compare_takes_the_mixture(tmp_path):
    face = tmp_path / "face.png"
    _face(4, (64, 64)).save(face)
    out = tmp_path / "grid.png"
    assert main(["compare", "--faces", str(face), "--lr", "16", "--hr", "48", "--degradation", "mixture",
                 "--out", str(out)]) == 0
    assert out.is_file()


# ---------------------------------------------------------------- data root


def test_data_root_order(tmp_path, monkeypatch):
    beside = tmp_path / "beside"
    monkeypatch.setattr(arasfsr.data, "_BESIDE_CHECKOUT", beside)
    monkeypatch.delenv("ARASFSR_DATA", raising=False)
    assert resolve_data_root() == Path("../shared/data")  # nothing else: relative to the working dir
    beside.mkdir()
    assert resolve_data_root() == beside
    monkeypatch.setenv("ARASFSR_DATA", str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root("rel") == Path("rel")


def test_training_and_evaluation_honour_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ARASFSR_DATA", str(tmp_path / "from-env"))
    with pytest.raises(InputError, match="from-env"):
        train("smoke/A-liif", out=tmp_path / "r1")
    with pytest.raises(InputError, match="from-config"):  # a config's data.root beats the environment
        train("smoke/A-liif", out=tmp_path / "r2", overrides=[f"data.root={tmp_path / 'from-config'}"])
    with pytest.raises(InputError, match="from-arg"):  # --data-root beats both
        train("smoke/A-liif", out=tmp_path / "r3", data_root=tmp_path / "from-arg",
              overrides=[f"data.root={tmp_path / 'from-config'}"])
    with pytest.raises(InputError, match="from-env"):
        run_eval(EvalConfig("C", out=tmp_path / "e", models=["bicubic"]))


# ---------------------------------------------------------------- configs

# configs/protocols/*.yaml and the 39 configs/<tier>/<protocol>-<model>.yaml as shipped before
# configs were made from their names (frozen copy), and the defaults they were merged over.
OLD_PROTOCOLS = {
    "A": {"data": {"lr_size": 64, "hr_size": [64, 128], "degradation": "bicubic"},
          "val": {"lr_size": 64, "hr_size": 96, "degradation": "bicubic"}},
    "B": {"data": {"lr_size": 16, "hr_size": 128, "degradation": "bicubic"},
          "val": {"lr_size": 16, "hr_size": 128, "degradation": "bicubic"}},
    "C": {"data": {"lr_size": 32, "hr_size": [32, 64], "degradation": "nn-jpeg"},
          "val": {"lr_size": 32, "hr_size": 48, "degradation": "nn-jpeg"}},
    "P": {"data": {"lr_size": [12, 96], "scale": [1, 8], "max_hr": 200, "degradation": "mixture"},
          "val": {"lr_size": 32, "hr_size": 128, "degradation": "mixture"}},
}
OLD_MODELS = {"A": {"arasfsr": "e-arasfsr", "liif": "e-liif", "lte": "e-lte", "diinn": "e-diinn",
                    "arasfsr-L": "e-arasfsr-L", "arasfsr-G": "e-arasfsr-G", "arasfsr-S": "e-arasfsr-S"},
              "B": {"arasfsr": "e-arasfsr", "liif": "e-liif", "sparnet": "sparnet"},
              "C": {"arasfsr": "e-arasfsr", "liif": "e-liif"},
              "P": {"arasfsr": "e-arasfsr"}}
OLD_TIERS = {  # without tier_model_args (network sizes move beside the models)
    "smoke": {"data": {"limit": 8, "sample_q": 64, "num_workers": 0}, "val": {"count": 2, "batch_size": 2},
              "train": {"iterations": 4, "batch_size": 2, "val_every": 2, "log_every": 1,
                        "keep_checkpoints": "all"}},
    "cpu": {"data": {"sample_q": 1024, "num_workers": 0}, "val": {"count": 20, "batch_size": 10},
            "train": {"iterations": 5000, "batch_size": 8, "val_every": 500, "log_every": 10}},
    "paper": {"data": {"sample_q": 2304, "num_workers": 8}, "val": {"count": 50, "batch_size": 10},
              "train": {"iterations": 10000, "batch_size": 16, "val_every": 1000, "log_every": 50}},
}
OLD_DEFAULTS = {
    "model_args": {},
    "data": {"root": "../shared/data", "train": "utkface/train", "val": "utkface/val", "limit": None,
             "lr_size": 64, "hr_size": None, "scale": None, "max_hr": None, "degradation": "bicubic",
             "sample_q": 2304, "flip": True, "num_workers": 0},
    "val": {"lr_size": 64, "hr_size": 96, "degradation": "bicubic", "count": 50, "batch_size": 10},
    "train": {"iterations": 1000, "batch_size": 16, "lr": 1.0e-4, "lr_decay_at": 0.5, "lr_gamma": 0.1,
              "charbonnier_delta": 1.0e-3, "kl_weight": 0.0, "seed": 0, "val_every": 500,
              "precision": "auto", "log_every": 10, "keep_checkpoints": "latest"},
}
OLD_NAMES = sorted(f"{tier}/{p}-{m}" for tier in OLD_TIERS for p, models in OLD_MODELS.items() for m in models)


def _old_config(name: str) -> dict:
    tier, _, rest = name.partition("/")
    protocol, _, model = rest.partition("-")
    cfg = json.loads(json.dumps(OLD_DEFAULTS))
    for part in (OLD_PROTOCOLS[protocol], OLD_TIERS[tier]):
        for section, values in part.items():
            cfg[section].update(values)
    cfg.update(name=rest, protocol=protocol, tier=tier, model=OLD_MODELS[protocol][model])
    return cfg


def test_list_configs_still_lists_every_shipped_name():
    assert len(OLD_NAMES) == 39 and set(OLD_NAMES) <= set(list_configs())


# Keys added since the YAML files (training/config.py DEFAULTS: the device path, EMA, schedules,
# speed switches): the old configs had their default values.
NEW_KEYS = {"data": ("crop_aug", "pipeline", "realistic"),
            "train": ("loss", "betas", "fused_adam", "warmup", "lr_schedule", "ema_decay", "compile",
                      "channels_last", "time_budget_s", "profile", "query", "checkpoint_every_s", "flat_weight")}


@pytest.mark.parametrize("name", OLD_NAMES)
def test_shipped_names_resolve_as_their_yaml_files_did(name):
    from arasfsr.training.config import DEFAULTS, merge

    cfg = load_config(name)
    cfg.pop("tier_model_args")
    old = _old_config(name)
    # The intended changes: no fixed root, so ARASFSR_DATA counts (resolve_data_root) ...
    assert old["data"].pop("root") == "../shared/data" and cfg["data"].pop("root") is None
    # ... and a model's authors' recipe (training/recipes.py) over the protocol and tier.
    recipe = cfg.pop("recipe")
    if recipe is not None:
        old = merge(old, recipe["values"])
    for section, keys in NEW_KEYS.items():
        for key in keys:
            default = (recipe or {}).get("values", {}).get(section, {}).get(key, DEFAULTS[section][key])
            assert cfg[section].pop(key) == default
            old[section].pop(key, None)
    assert cfg == old


def test_a_config_file_names_its_protocol(tmp_path):
    (tmp_path / "mine.yaml").write_text("include: [tier.yaml]\nprotocol: C\nmodel: e-liif\n"
                                        "data: {lr_size: 24}\n")
    (tmp_path / "tier.yaml").write_text("train: {iterations: 7}\n")
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg["name"] == "mine" and cfg["train"]["iterations"] == 7
    assert cfg["data"]["lr_size"] == 24 and cfg["data"]["degradation"] == "nn-jpeg"  # the file wins
    (tmp_path / "bad.yaml").write_text("protocol: Z\nmodel: e-liif\n")
    with pytest.raises(InputError, match="protocol 'Z'"):
        load_config(tmp_path / "bad.yaml")


# ---------------------------------------------------------------- a new protocol is one record


@pytest.fixture
def throwaway_protocol():
    record = Protocol(
        name="T", title="Protocol T (a test): x3 from 16 px", summary="a test",
        train=TrainSpec(lr_size=16, hr_size=(24, 48)), val=ValSpec(16, 48),
        rows=(Row("utkface/test", 16, 48, note="match"), Row("utkface/test", 12, 36, "mixture")),
        layout=TableLayout(by_set=False, tables=(("psnr", "ssim"),)), models=("liif",))
    register_protocol(record)
    yield record
    del PROTOCOLS["T"]


def test_a_new_protocol_is_one_record(throwaway_protocol, face_data, tmp_path, capsys):
    assert get_protocol("T") is throwaway_protocol
    # a training config...
    assert {"smoke/T-liif", "cpu/T-liif", "paper/T-liif"} <= set(list_configs())
    cfg = load_config("smoke/T-liif")
    assert (cfg["protocol"], cfg["model"], cfg["tier"]) == ("T", "e-liif", "smoke")
    assert cfg["data"]["hr_size"] == [24, 48] and cfg["val"]["hr_size"] == 48
    root = face_data
    weights = train("smoke/T-liif", out=tmp_path / "run", data_root=root, overrides=["train.iterations=2"])
    assert json.loads(weights.with_suffix(".json").read_text())["protocol"] == "T"
    # ...its evaluation rows, from the command line...
    out = tmp_path / "eval"
    assert main(["eval", "--protocol", "T", "--model", str(weights), "--data", str(root), "--out", str(out),
                 "--no-pictures"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["key"] for r in results["rows"]] == [r.key for r in throwaway_protocol.rows]
    assert results["title"] == throwaway_protocol.title and len(results["results"]) == 4
    # ...and its table, laid out as the record says: one block, PSNR and SSIM side by side.
    md = (out / "results.md").read_text()
    assert "# Protocol T (a test)" in md and "## utkface/test" not in md and "SSIM (MATLAB" not in md
    assert "| Method | utkface x3 16-48 match PSNR | utkface x3 16-48 match SSIM | utkface x3 12-36 PSNR |" in md


def test_a_protocol_record_is_checked():
    a = get_protocol("A")
    with pytest.raises(ValueError, match="already registered"):
        register_protocol(a)
    with pytest.raises(ValueError, match="without '-'"):
        register_protocol(Protocol("A-2", "t", "s", a.train, a.val, a.rows))
    with pytest.raises(ValueError, match="unknown degradation"):
        register_protocol(Protocol("Q", "t", "s", TrainSpec(16, 32, degradation="blur"), a.val, a.rows))
    with pytest.raises(InputError, match="unknown protocol"):
        get_protocol("Q")


@pytest.mark.parametrize("protocol", ["A", "B", "C", "P"])
def test_the_shipped_tables_come_out_of_the_records_unchanged(protocol):
    # results.md of the shipped results was written when B's layout was a special case.
    folder = ROOT / "results" / "eval" / protocol
    results = json.loads((folder / "results.json").read_text())
    assert render_markdown(results) == (folder / "results.md").read_text()
