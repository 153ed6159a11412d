"""Shared fixtures: the tiny model, the synthetic face set, the real data (when present)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

# Two cores: keep tests from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))

from arasfsr.checkpoint import save_checkpoint
from arasfsr.data import resolve_data_root
from arasfsr.models import ImplicitSR, create_model
from arasfsr.registry import tier_sizes

SHARED_DATA = resolve_data_root()


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The decoded-faces cache of training runs (and their subprocesses) in a temporary folder."""
    from arasfsr.training.device_data import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real face photos: only for tests whose point is real faces (detection, real JPEGs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA}; set ARASFSR_DATA")
    return SHARED_DATA


# --- the tiny model ------------------------------------------------------------------------


def make_tiny_model() -> ImplicitSR:
    """ARASFSR at the smoke tier's sizes (declared beside the model), fixed random weights:
    every part of the model is there, and it renders in milliseconds."""
    torch.manual_seed(0)
    return create_model("arasfsr", **tier_sizes("arasfsr", "smoke")).eval()


@pytest.fixture
def tiny_model() -> ImplicitSR:
    """A fresh tiny model per test (a test may change it); always the same weights."""
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny model saved as ``tiny.safetensors`` with a card (read it, do not change it)."""
    return save_checkpoint(make_tiny_model(), tmp_path_factory.mktemp("tiny") / "tiny.safetensors",
                           card={"description": "tiny"})


@pytest.fixture(scope="session")
def tiny(tiny_checkpoint) -> str:
    """The tiny checkpoint's path as the command line takes it."""
    return str(tiny_checkpoint)


# --- the synthetic face set ----------------------------------------------------------------

# utkface/ as the real set lays it out (200x200 JPEGs named AGE_GENDER_RACE_DATETIME.jpg),
# ffhq/test (aligned PNGs, framed looser) and realworld/: enough faces for every protocol's
# training (smoke tier: 8 faces, 2 for validation) and evaluation with --limit.
SPLITS = {"train": 12, "val": 4, "test": 8}


def synthetic_face(seed: int, side: int = 200, zoom: float = 1.0) -> Image.Image:
    """A smooth face-like picture: background, hair, skin oval, eyes, brows, nose, mouth,
    with mild texture; colours and proportions vary with ``seed``. ``zoom`` < 1 frames it
    looser, as FFHQ is."""
    rng = np.random.default_rng(seed)
    y, x = ((np.mgrid[0:side, 0:side] + 0.5) / side * 2 - 1).astype(np.float32) / zoom

    def blob(cx, cy, rx, ry, soft=0.08):  # 1 inside an ellipse, 0 outside, smooth edge
        d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        return np.clip((1 - d) / soft + 0.5, 0, 1)[..., None]

    bg = rng.uniform(40, 200, 3)
    img = bg + 40 * y[..., None] * rng.uniform(-1, 1, 3)
    hair, skin = rng.uniform(20, 120, 3), rng.uniform([150, 100, 80], [240, 190, 160])
    face_w, eye_dx = rng.uniform(0.55, 0.7), rng.uniform(0.26, 0.34)
    layers = [(blob(0, -0.15, face_w + 0.1, 0.85), hair), (blob(0, 0.05, face_w, 0.82), skin)]
    for side_x in (-eye_dx, eye_dx):
        layers += [(blob(side_x, -0.22, 0.14, 0.035, 0.3), hair * 0.8),            # brow
                   (blob(side_x, -0.1, 0.11, 0.06), np.array([235, 235, 230])),   # eye white
                   (blob(side_x, -0.1, 0.05, 0.05), rng.uniform(20, 90, 3))]      # iris
    layers += [(blob(0, 0.12, 0.06, 0.16, 0.5) * 0.35, skin * 0.7),                # nose shade
               (blob(0, 0.42, rng.uniform(0.15, 0.25), 0.05), np.array([170, 70, 70]))]  # mouth
    for alpha, colour in layers:
        img = img * (1 - alpha) + alpha * colour
    img = img * (1 + 0.15 * x[..., None] * rng.uniform(-1, 1))  # lit from one side
    img += 3 * rng.standard_normal(img.shape, np.float32)  # skin and sensor texture
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(0.6))


def write_face_set(root: Path) -> Path:
    """The synthetic face set under ``root`` (the layout of the real data folder)."""
    seed = 0
    for split, count in SPLITS.items():
        folder = root / "utkface" / split
        folder.mkdir(parents=True)
        for i in range(count):
            seed += 1
            age, gender, race = 5 + 7 * seed % 80, seed % 2, seed % 5
            synthetic_face(seed).save(folder / f"{age}_{gender}_{race}_2017{seed:011d}.jpg", quality=90)
    for folder, count, side, zoom in (("ffhq/test", 2, 320, 0.62), ("realworld", 2, 128, 0.62)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            seed += 1
            synthetic_face(seed, side, zoom).save(root / folder / f"{i:05d}.png")
    return root


@pytest.fixture(scope="session")
def face_data(tmp_path_factory) -> Path:
    """A data folder of synthetic faces (utkface/, ffhq/, realworld/), made once per run:
    the training and evaluation contracts run on it with or without the real data."""
    return write_face_set(tmp_path_factory.mktemp("data"))
