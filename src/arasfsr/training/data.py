"""Training and validation data: whole faces, LR/HR pairs made on the fly.

Exact resume rests on one rule: the batch of global step ``s`` is a pure function of
``(seed, s)``. :class:`StepBatches` is indexed by the step, not by an image; the
sampler :class:`StepSampler` counts steps from where training stands, so a run
resumed from step ``s`` gets batches ``s, s+1, ...`` whatever the number of workers.
Per batch we draw one LR size and every sample's HR size (``plan``); per sample
(keyed by its position in the global batch, so DDP ranks split the same global batch)
the flip, the degradation and the queried pixels.
"""

from __future__ import annotations

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

    def plan(self, step: int) -> tuple[int, list[int], int]:
        """(LR size, HR size of every sample of the global batch, queries per sample)."""
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
        q = min(h * h for h in hrs)
        if d["sample_q"] is not None:
            q = min(q, d["sample_q"])
        elif len(set(hrs)) > 1:
            raise InputError("data.sample_q: null (all pixels) needs one HR size per batch")
        return lr, hrs, q

    def image_index(self, position: int) -> int:
        """Which face sits at a global sample position: a new permutation every epoch."""
        n = len(self.files)
        epoch, offset = divmod(position, n)
        perm = np.random.default_rng([self.seed, epoch, 2]).permutation(n)
        return int(perm[offset])

    def sample(self, step: int, i: int, lr: int, hr: int, q: int) -> dict[str, Tensor]:
        position = step * self.batch_size + i
        rng = np.random.default_rng([self.seed, position, 3])
        img, _ = read_image(self.files[self.image_index(position)])
        if self.data["flip"] and rng.random() < 0.5:
            img = ImageOps.mirror(img)
        hr_img = to_tensor(resize(img, (hr, hr)))
        lr_img = to_tensor(degrade(img, (lr, lr), self.data["degradation"], rng))
        pixels = hr_img.flatten(1).t()
        coord = make_coord((hr, hr))
        if q < hr * hr:
            idx = torch.from_numpy(rng.choice(hr * hr, q, replace=False))
            pixels, coord = pixels[idx], coord[idx]
        ratio = torch.tensor([lr / hr, lr / hr], dtype=torch.float32)
        return {"lr": lr_img, "coord": coord, "gt": pixels.contiguous(), "ratio": ratio}

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        lr, hrs, q = self.plan(step)
        first = self.rank * self.per_rank
        items = [self.sample(step, i, lr, hrs[i], q) for i in range(first, first + self.per_rank)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


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
