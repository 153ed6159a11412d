"""Every protocol as one record: its training data, validation, test rows and table layout.

A :class:`Protocol` is all that defines a protocol: training configs
(:mod:`arasfsr.training.config`), evaluation (:mod:`arasfsr.evaluation.runner`), the
results tables (:mod:`arasfsr.evaluation.report`) and ``tools/make_results.py`` read it.
Adding a protocol is one :func:`register_protocol` call (or one entry in
:data:`PROTOCOLS`).

A sample is the whole face (as in the paper): the ground truth is resized to the HR size
(bicubic, Pillow, anti-aliased) and, separately, to the LR size by the row's degradation
(see :mod:`arasfsr.data.degrade`).

Protocols (the paper's tables, on our data):

- ``A`` scales (Table 1): LR 64 -> HR 96, 128 (in distribution), 256, 512 (out of
  distribution) on ``ffhq/test``; LR 64 -> 96, 128, 192 on ``utkface/test``.
- ``B`` input sizes (Table 2): match 16 -> 128 and mismatch 12 -> 96, 24 -> 192 on
  ``utkface/test``; mismatch 32 -> 256 on ``ffhq/test``.
- ``C`` real-world degradation (Fig. 4): x2 at 32 -> 64 and 64 -> 128 with NN-JPEG inputs
  on ``utkface/test``.
- ``D`` ablation (Table 3): trained and tested as ``A``.
- ``P`` practical: every row of ``A``, ``B`` and ``C``.
- ``R`` realistic: the realistic degradation chain (blur, a random reduction, noise, JPEG,
  sometimes twice; :data:`arasfsr.data.degrade.REALISTIC`) at 16 -> 128 and 32 -> 128 on
  ``utkface/test`` and ``ffhq/test`` and 64 -> 256 on ``ffhq/test`` (UTKFace's 200 px
  ground truth stops at 200); trained as ``P`` but on realistic inputs. ``arasfsr eval
  --protocol R --split val`` scores its UTKFace rows on ``utkface/val`` (model selection).

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

import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data.degrade import DEGRADATIONS, degrade, resize
from .errors import InputError

if TYPE_CHECKING:  # numpy and Pillow load where faces are read: `eval --help` lists the protocols
    import numpy as np
    from PIL import Image

FFHQ_CROP = (192, 300, 832, 940)  # (left, top, right, bottom) on the 1024x1024 aligned face
FFHQ_SIDE = 1024
EVAL_STREAM = 0x5245414C  # "REAL": the fourth word of an evaluation's realistic seeds


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


Span = int | tuple[int, int]  # a size, or [min, max] drawn from


@dataclass(frozen=True)
class TrainSpec:
    """A protocol's training data: what a training config's ``data`` section takes from it."""

    lr_size: Span                          # one LR size per batch
    hr_size: Span | None = None            # drawn per sample...
    scale: tuple[float, float] | None = None  # ...or HR = LR x s, s drawn per sample
    max_hr: int | None = None              # never above the ground truth's size
    degradation: str = "bicubic"           # a name of arasfsr.data.degrade.DEGRADATIONS


@dataclass(frozen=True)
class ValSpec:
    """A protocol's validation during training: its central size and degradation."""

    lr_size: int
    hr_size: int
    degradation: str = "bicubic"


METRIC_COLUMNS = (("psnr",), ("ssim",), ("ssim_matlab",))


@dataclass(frozen=True)
class TableLayout:
    """How ``results.md`` lays out a protocol's results (read by :mod:`arasfsr.evaluation.report`).

    ``by_set``: one block per (dataset, degradation), headed ``## utkface/test, bicubic LR``,
    with columns named by the row (``x2 64-128 (in-distribution)``), as the paper's Tables 1
    and 3; otherwise one block for all rows, columns naming the set too (``utkface x8 16-128
    match``), as Table 2. ``tables``: the tables of a block, each a tuple of the metrics
    shown side by side per row; a table of one metric is titled by it.
    """

    by_set: bool = True
    tables: tuple[tuple[str, ...], ...] = METRIC_COLUMNS


@dataclass(frozen=True)
class Protocol:
    """One protocol, everything about it. ``models`` name the shipped training configs:
    ``TIER/NAME-MODEL`` for every tier and every listed model."""

    name: str                       # a short name without "-" (configs are NAME-MODEL)
    title: str                      # the results' title, e.g. "Table 1 (protocol A): ..."
    summary: str                    # a few words for the command line's help
    train: TrainSpec
    val: ValSpec
    rows: tuple[TestRow, ...]       # the test rows, in the order of the results table
    layout: TableLayout = field(default_factory=TableLayout)
    models: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        """The part of a training config the protocol gives."""
        return {"protocol": self.name, "data": _as_config(self.train), "val": _as_config(self.val)}


def _as_config(spec: TrainSpec | ValSpec) -> dict[str, Any]:
    # Lists, not tuples: configs are YAML, and the run's config.yaml and card are written back.
    return {f.name: list(v) if isinstance(v, tuple) else v
            for f in fields(spec) for v in (getattr(spec, f.name),)}


_A_ROWS = (*(TestRow("utkface/test", 64, hr, note=note) for hr, note in
             ((96, "in-distribution"), (128, "in-distribution"), (192, "out-of-distribution"))),
           *(TestRow("ffhq/test", 64, hr, note=note) for hr, note in
             ((96, "in-distribution"), (128, "in-distribution"), (256, "out-of-distribution"),
              (512, "out-of-distribution"))))
_B_ROWS = (TestRow("utkface/test", 12, 96, note="mismatch"),
           TestRow("utkface/test", 16, 128, note="match"),
           TestRow("utkface/test", 24, 192, note="mismatch"),
           TestRow("ffhq/test", 32, 256, note="mismatch"))
_C_ROWS = (TestRow("utkface/test", 32, 64, "nn-jpeg", note="real-world"),
           TestRow("utkface/test", 64, 128, "nn-jpeg", note="real-world"))
_R_ROWS = (*(TestRow(ds, lr, 128, "realistic") for ds in ("utkface/test", "ffhq/test") for lr in (16, 32)),
           TestRow("ffhq/test", 64, 256, "realistic"))
# Paper Sec. 4.3.1: LR 64, HR drawn per face in [64, 128] (x1 to x2); validated at x1.5.
_A_TRAIN, _A_VAL = TrainSpec(64, hr_size=(64, 128)), ValSpec(64, 96)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("A", "Table 1 (protocol A): up-sampling scales, LR 64", "scales",
             _A_TRAIN, _A_VAL, _A_ROWS,
             # arasfsr-authors, diinn-arasfsr: the authors' released code (docs/fidelity.md)
             models=("arasfsr", "liif", "lte", "diinn", "arasfsr-L", "arasfsr-G", "arasfsr-S",
                     "arasfsr-authors", "diinn-arasfsr")),
    # Paper Sec. 4.3.2: fixed x8 pairs 16 -> 128; tested on input sizes never seen.
    Protocol("B", "Table 2 (protocol B): input sizes, x8", "input sizes",
             TrainSpec(16, hr_size=128), ValSpec(16, 128), _B_ROWS,
             TableLayout(by_set=False, tables=(("psnr", "ssim"), ("ssim_matlab",))),
             models=("arasfsr", "liif", "sparnet")),
    # Paper Sec. 4.3.1, Fig. 4: LR 32, HR in [32, 64], the authors' NN-JPEG inputs.
    Protocol("C", "Fig. 4 (protocol C): real-world NN-JPEG inputs, x2", "NN-JPEG",
             TrainSpec(32, hr_size=(32, 64), degradation="nn-jpeg"), ValSpec(32, 48, "nn-jpeg"),
             _C_ROWS, models=("arasfsr", "liif")),
    # Paper Table 3: the ablation is trained and tested as Table 1 (its models: A-arasfsr-L ...).
    Protocol("D", "Table 3 (protocol D): ablation, LR 64", "ablation", _A_TRAIN, _A_VAL, _A_ROWS),
    # Ours: faces of 12 to 96 px (one LR size per batch), x1 to x8 per face with HR never
    # above the 200 px ground truth, the random degradation mixture; validated at x4.
    Protocol("P", "Protocol P (practical): every row of A, B and C", "all of A-C",
             TrainSpec((12, 96), scale=(1, 8), max_hr=200, degradation="mixture"),
             ValSpec(32, 128, "mixture"), tuple(dict.fromkeys(_A_ROWS + _B_ROWS + _C_ROWS)),
             models=("arasfsr",)),
    # Ours: P's faces and scales on the realistic chain (real low-quality faces); fine-tuned
    # from the default model (paper/R-arasfsr has its architecture and config).
    Protocol("R", "Protocol R (realistic): blur, reductions, noise, JPEG", "realistic degradations",
             TrainSpec((12, 96), scale=(1, 8), max_hr=200, degradation="realistic"),
             ValSpec(32, 128, "realistic"), _R_ROWS, models=("arasfsr",)),
)}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol: training configs, ``arasfsr eval`` and the reports then know it."""
    if not protocol.name or any(c in protocol.name for c in "-/ "):
        raise ValueError(f"protocol name {protocol.name!r}: give a short name without '-', '/' or spaces")
    if protocol.name in PROTOCOLS:
        raise ValueError(f"protocol {protocol.name!r} is already registered")
    kinds = {protocol.train.degradation, protocol.val.degradation} | {r.degradation for r in protocol.rows}
    if not kinds <= set(DEGRADATIONS):
        raise ValueError(f"protocol {protocol.name!r}: unknown degradation(s) {', '.join(sorted(kinds - set(DEGRADATIONS)))}")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def list_faces(data_root: Path, dataset: str, limit: int | None = None) -> list[Path]:
    """The images of ``dataset`` in name order; ``limit`` of them, evenly spaced, if given.

    Evenly spaced rather than the first N: UTKFace names start with the age, so the
    first faces in name order are nearly all of one age group.
    """
    from .imageio import image_files

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
    from .imageio import read_image

    img, _ = read_image(path)
    return crop_ffhq(img) if dataset.startswith("ffhq") else img


def make_pair(gt: Image.Image, row: TestRow) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) uint8 HxWx3 arrays of one ground-truth face for ``row``.

    A random degradation (``mixture``, ``realistic``) draws from a seed made of the face's
    pixels and the row, so a face gets the same LR input in every run, on every rank, in any
    order. The realistic draws add :data:`EVAL_STREAM`: a stream of their own, apart from the
    ``(seed, position, 3)`` streams training draws from.
    """
    import numpy as np

    hr = resize(gt, row.hr_size)
    entropy = [zlib.crc32(gt.tobytes()), row.lr, row.hr] + ([EVAL_STREAM] if row.degradation == "realistic" else [])
    rng = np.random.default_rng(entropy)
    lr = degrade(gt, row.lr_size, row.degradation, rng)
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
