"""The test rows of every evaluation protocol, and how a test face becomes an (LR, HR) pair.

A sample is the whole face (as in the paper): the ground truth is resized to the HR size
(bicubic, Pillow, anti-aliased) and, separately, to the LR size by the row's degradation
(``bicubic`` or ``nn-jpeg``, see :mod:`arasfsr.data.degrade`).

Protocols (the paper's tables, on our data):

- ``A`` scales (Table 1): LR 64 -> HR 96, 128 (in distribution), 256, 512 (out of
  distribution) on ``ffhq/test``; LR 64 -> 96, 128, 192 on ``utkface/test``.
- ``B`` input sizes (Table 2): match 16 -> 128 and mismatch 12 -> 96, 24 -> 192 on
  ``utkface/test``; mismatch 32 -> 256 on ``ffhq/test``.
- ``C`` real-world degradation (Fig. 4): x2 at 32 -> 64 and 64 -> 128 with NN-JPEG inputs
  on ``utkface/test``.
- ``D`` ablation (Table 3): the rows of ``A``.
- ``P`` practical: every row of ``A``, ``B`` and ``C``.

FFHQ framing. FFHQ's aligned 1024x1024 faces show hair and background; UTKFace's 200x200
crops run from about the eyebrows to the chin. Measured on the mean of the 1,000
``utkface/test`` faces, UTKFace's eye centres sit at (59, 56) and (138, 56) and the mouth
line at y = 137 (of 200); on the mean of the 10 ``ffhq/test`` faces the eyes sit at
(388, 476) and (640, 479). A 640x640 box scales UTKFace's eye distance and eye-to-nose
distance by 3.2 and puts the eyes at the same height, so every FFHQ face is first cropped
to :data:`FFHQ_CROP` = (left 192, top 300, right 832, bottom 940) of the 1024x1024 image
(scaled proportionally for other sizes, e.g. the 512x512 ``realworld`` faces, which are
aligned the same way). HR sizes up to 512 are therefore still reductions of real pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data.degrade import degrade, resize
from .errors import InputError
from .imageio import image_files, read_image

FFHQ_CROP = (192, 300, 832, 940)  # (left, top, right, bottom) on the 1024x1024 aligned face
FFHQ_SIDE = 1024
DATASETS = ("utkface/test", "ffhq/test")
PROTOCOL_NAMES = ("A", "B", "C", "D", "P")


@dataclass(frozen=True)
class TestRow:
    """One test condition: faces of ``dataset`` at ``lr`` x ``lr`` -> ``hr`` x ``hr``."""

    dataset: str
    lr: int
    hr: int
    degradation: str = "bicubic"
    note: str = ""  # "in-distribution", "match", ... as in the paper's headers

    @property
    def scale(self) -> float:
        return self.hr / self.lr

    @property
    def lr_size(self) -> tuple[int, int]:
        return (self.lr, self.lr)

    @property
    def hr_size(self) -> tuple[int, int]:
        return (self.hr, self.hr)

    @property
    def label(self) -> str:
        """The paper's column header, e.g. ``x1.5 64-96``."""
        return f"x{self.scale:g} {self.lr}-{self.hr}"

    @property
    def key(self) -> str:
        """Unique across protocols, e.g. ``utkface/test bicubic 64-96``."""
        return f"{self.dataset} {self.degradation} {self.lr}-{self.hr}"

    def as_dict(self) -> dict:
        return {"key": self.key, "dataset": self.dataset, "degradation": self.degradation,
                "lr_size": list(self.lr_size), "hr_size": list(self.hr_size),
                "scale": self.scale, "label": self.label, "note": self.note}


def _rows_a() -> tuple[TestRow, ...]:
    ffhq = [TestRow("ffhq/test", 64, hr, note=note) for hr, note in
            ((96, "in-distribution"), (128, "in-distribution"), (256, "out-of-distribution"),
             (512, "out-of-distribution"))]
    utk = [TestRow("utkface/test", 64, hr, note=note) for hr, note in
           ((96, "in-distribution"), (128, "in-distribution"), (192, "out-of-distribution"))]
    return tuple(utk + ffhq)


def _rows_b() -> tuple[TestRow, ...]:
    return (TestRow("utkface/test", 12, 96, note="mismatch"),
            TestRow("utkface/test", 16, 128, note="match"),
            TestRow("utkface/test", 24, 192, note="mismatch"),
            TestRow("ffhq/test", 32, 256, note="mismatch"))


def _rows_c() -> tuple[TestRow, ...]:
    return (TestRow("utkface/test", 32, 64, "nn-jpeg", note="real-world"),
            TestRow("utkface/test", 64, 128, "nn-jpeg", note="real-world"))


PROTOCOLS: dict[str, tuple[TestRow, ...]] = {
    "A": _rows_a(),
    "B": _rows_b(),
    "C": _rows_c(),
    "D": _rows_a(),
    "P": tuple(dict.fromkeys(_rows_a() + _rows_b() + _rows_c())),
}
TITLES = {
    "A": "Table 1 (protocol A): up-sampling scales, LR 64",
    "B": "Table 2 (protocol B): input sizes, x8",
    "C": "Fig. 4 (protocol C): real-world NN-JPEG inputs, x2",
    "D": "Table 3 (protocol D): ablation, LR 64",
    "P": "Protocol P (practical): every row of A, B and C",
}


def protocol_rows(name: str) -> tuple[TestRow, ...]:
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOL_NAMES)}")
    return PROTOCOLS[name]


def default_data_root() -> Path:
    """``$ARASFSR_DATA``, else ``shared/data`` beside the checkout, else ``./shared/data``."""
    env = os.environ.get("ARASFSR_DATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return beside if beside.is_dir() else Path("shared") / "data"


def list_faces(data_root: Path, dataset: str, limit: int | None = None) -> list[Path]:
    """The images of ``dataset`` in name order; ``limit`` of them, evenly spaced, if given.

    Evenly spaced rather than the first N: UTKFace names start with the age, so the
    first faces in name order are nearly all of one age group.
    """
    folder = Path(data_root) / dataset
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; pass --data DIR (the folder holding "
                         "utkface/ and ffhq/) or set ARASFSR_DATA")
    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: holds no images")
    if limit is None or limit >= len(files):
        return files
    return [files[i * len(files) // limit] for i in range(limit)]


def ffhq_crop_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """:data:`FFHQ_CROP` scaled to an FFHQ-aligned image of ``size = (w, h)``."""
    w, h = size
    left, top, right, bottom = FFHQ_CROP
    return (round(left * w / FFHQ_SIDE), round(top * h / FFHQ_SIDE),
            round(right * w / FFHQ_SIDE), round(bottom * h / FFHQ_SIDE))


def crop_ffhq(img: Image.Image) -> Image.Image:
    return img.crop(ffhq_crop_box(img.size))


def load_ground_truth(path: Path, dataset: str) -> Image.Image:
    """The ground-truth face as used by the protocols (FFHQ cropped to UTKFace framing)."""
    img, _ = read_image(path)
    return crop_ffhq(img) if dataset.startswith("ffhq") else img


def make_pair(gt: Image.Image, row: TestRow) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) uint8 HxWx3 arrays of one ground-truth face for ``row``."""
    hr = resize(gt, row.hr_size)
    lr = degrade(gt, row.lr_size, row.degradation)
    return np.asarray(lr), np.asarray(hr)


# UTKFace file names: AGE_GENDER_RACE_DATETIME.jpg
GENDERS = {"0": "male", "1": "female"}
RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}
AGE_BINS = ((0, 9), (10, 19), (20, 29), (30, 39), (40, 59), (60, None))


def age_bin(age: int) -> str:
    for lo, hi in AGE_BINS:
        if age >= lo and (hi is None or age <= hi):
            return f"{lo}+" if hi is None else f"{lo}-{hi}"
    return "unknown"


def utkface_groups(name: str) -> dict[str, str]:
    """{"age": "20-29", "gender": "female", "race": "Asian"} from a UTKFace file name.

    Fields that are missing or malformed (a few files lack one) become ``unknown``.
    """
    parts = Path(name).name.split("_")
    age = age_bin(int(parts[0])) if parts and parts[0].isdigit() else "unknown"
    gender = GENDERS.get(parts[1], "unknown") if len(parts) >= 4 else "unknown"
    race = RACES.get(parts[2], "unknown") if len(parts) >= 4 else "unknown"
    if len(parts) == 3:  # AGE_GENDER_DATETIME: race missing
        gender = GENDERS.get(parts[1], "unknown")
    return {"age": age, "gender": gender, "race": race}
