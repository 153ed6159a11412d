"""Training and validation data: whole faces, LR/HR pairs made on the fly.

Exact resume rests on one rule: the batch of global step ``s`` is a pure function of
``(seed, s)``. :class:`StepBatches` is indexed by the step, not by an image; the
sampler :class:`StepSampler` counts steps from where training stands, so a run
resumed from step ``s`` gets batches ``s, s+1, ...`` whatever the number of workers.
Per batch we draw one LR size and every sample's HR size (``plan``); per sample
(keyed by its position in the global batch, so DDP ranks split the same global batch)
the flip, the crop (``data.crop_aug``, a recipe's scale augmentation), the degradation
and the queried pixels. Every face contributes ``sample_q`` queries, or all of its
pixels when it has fewer; shorter query lists are padded and ``mask`` marks the real ones.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ..api import images_to_tensor
from ..data.degrade import degrade, resize
from ..errors import InputError
from ..imageio import image_files, read_image
from ..models.core import make_coord

SUBSET_SEED = 0  # fixed: a ``limit`` always names the same faces


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such data folder (pass --data-root DIR, the folder holding utkface/, or set ARASFSR_DATA)")
    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: folder holds no images")
    return files


def subset(files: list[Path], limit: int | None) -> list[Path]:
    """A fixed, representative subset: the first ``limit`` of a seeded shuffle.

    (File names start with the age, so the first names alone would all be children.)
    """
    if limit is None or limit >= len(files):
        return list(files)
    order = list(files)
    random.Random(SUBSET_SEED).shuffle(order)
    return sorted(order[:limit])


def to_tensor(img: Image.Image) -> Tensor:
    return images_to_tensor(np.asarray(img)[None])[0]


def _draw(rng: np.random.Generator, span: Any) -> int:
    lo, hi = (span, span) if isinstance(span, (int, float)) else span
    return int(rng.integers(int(lo), int(hi) + 1))


class StepBatches(Dataset):
    """Item ``s`` = this rank's share of the training batch of global step ``s``."""

    def __init__(self, files: list[Path], data: dict[str, Any], batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise InputError(f"train.batch_size {batch_size} does not split over {world_size} processes")
        self.files, self.data, self.seed = files, data, seed
        self.batch_size, self.rank, self.world = batch_size, rank, world_size
        self.per_rank = batch_size // world_size

    def plan(self, step: int) -> tuple[int, list[int], list[int]]:
        """(LR size, HR size and query count of every sample of the global batch)."""
        d = self.data
        rng = np.random.default_rng([self.seed, step, 1])
        lr = _draw(rng, d["lr_size"])
        hrs = []
        for _ in range(self.batch_size):
            if d["hr_size"] is not None:
                hr = _draw(rng, d["hr_size"])
            else:
                lo, hi = d["scale"]
                if d["max_hr"]:
                    hi = max(lo, min(hi, d["max_hr"] / lr))
                hr = round(lr * rng.uniform(lo, hi))
            hrs.append(min(hr, d["max_hr"]) if d["max_hr"] else hr)
        if d["sample_q"] is None and len(set(hrs)) > 1:
            raise InputError("data.sample_q: null (all pixels) needs one HR size per batch")
        qs = [h * h if d["sample_q"] is None else min(h * h, d["sample_q"]) for h in hrs]
        return lr, hrs, qs

    def image_index(self, position: int) -> int:
        """Which face sits at a global sample position: a new permutation every epoch."""
        n = len(self.files)
        epoch, offset = divmod(position, n)
        return int(epoch_permutation(self.seed, epoch, n)[offset])

    def source(self, position: int) -> Image.Image:
        """The ground-truth face at a global sample position."""
        return read_image(self.files[self.image_index(position)])[0]

    def sample(self, step: int, i: int, lr: int, hr: int, q: int, q_pad: int | None = None) -> dict[str, Tensor]:
        position = step * self.batch_size + i
        rng = np.random.default_rng([self.seed, position, 3])
        img = augment(self.source(position), self.data, rng)
        hr_img = to_tensor(resize(img, (hr, hr)))
        lr_img = to_tensor(degrade(img, (lr, lr), self.data["degradation"], rng, self.data.get("realistic")))
        pixels = hr_img.flatten(1).t()
        coord = make_coord((hr, hr))
        if q < hr * hr:
            idx = torch.from_numpy(rng.choice(hr * hr, q, replace=False))
            pixels, coord = pixels[idx], coord[idx]
        ratio = torch.tensor([lr / hr, lr / hr], dtype=torch.float32)
        out = {"lr": lr_img, "coord": coord, "gt": pixels.contiguous(), "ratio": ratio}
        if q_pad is not None:  # a face with fewer pixels than its batch-mates query
            pad = q_pad - q
            out["coord"] = torch.cat([coord, coord.new_zeros(pad, 2)])
            out["gt"] = torch.cat([out["gt"], pixels.new_zeros(pad, 3)])
            out["mask"] = torch.arange(q_pad) < q
        return out

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        lr, hrs, qs = self.plan(step)
        q_pad = max(qs) if len(set(qs)) > 1 else None  # global max: every rank pads alike
        first = self.rank * self.per_rank
        items = [self.sample(step, i, lr, hrs[i], qs[i], q_pad) for i in range(first, first + self.per_rank)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


_PERMUTATIONS: dict[tuple[int, int, int], np.ndarray] = {}


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the faces in one epoch (kept: every sample of the epoch asks for it)."""
    key = (seed, epoch, n)
    if key not in _PERMUTATIONS:
        if len(_PERMUTATIONS) > 4:
            _PERMUTATIONS.clear()
        _PERMUTATIONS[key] = np.random.default_rng([seed, epoch, 2]).permutation(n)
    return _PERMUTATIONS[key]


def crop_box(rng: np.random.Generator, width: int, height: int, scale: Any,
             ratio: Any) -> tuple[int, int, int, int]:
    """A random crop ``(left, top, w, h)``: area fraction in ``scale``, aspect (w/h) in
    ``ratio`` (log-uniform); 10 tries, then the largest central crop of an allowed aspect.
    The draw of torchvision's ``RandomResizedCrop`` (SPARNet's scale augmentation)."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def draw_augment(data: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]
                 ) -> tuple[bool, tuple[int, int, int, int] | None]:
    """(flip, crop box or None) of one sample: the first draws of its ``rng``."""
    flip = bool(data["flip"] and rng.random() < 0.5)
    crop = data.get("crop_aug")
    box = crop_box(rng, size[0], size[1], crop["scale"], crop["ratio"]) if crop else None
    return flip, box


def augment(img: Image.Image, data: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    """The flipped, cropped ground truth (flip first, then crop, as SPARNet's pipeline)."""
    flip, box = draw_augment(data, rng, img.size)
    if flip:
        img = ImageOps.mirror(img)
    if box is not None:
        left, top, w, h = box
        img = img.crop((left, top, left + w, top + h))
    return img


class StepSampler(Sampler[int]):
    """Steps ``start, start+1, ...`` without end (``max_steps`` stops training)."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while True:
            yield step
            step += 1


class ValFaces(Dataset):
    """A fixed validation set: the first ``count`` faces at the protocol's central size."""

    def __init__(self, files: list[Path], val: dict[str, Any], rank: int = 0, world_size: int = 1) -> None:
        chosen = files[: val["count"]]
        self.items = list(enumerate(chosen))[rank::world_size]
        self.val = val

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        index, path = self.items[i]
        img, _ = read_image(path)
        lr, hr = self.val["lr_size"], self.val["hr_size"]
        rng = np.random.default_rng([index, 4])  # the mixture draws the same for every run
        return {"lr": to_tensor(degrade(img, (lr, lr), self.val["degradation"], rng)),
                "hr": to_tensor(resize(img, (hr, hr)))}
