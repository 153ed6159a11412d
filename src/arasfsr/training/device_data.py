"""The device-resident training path (``data.pipeline: device``).

The workers path decodes a JPEG, runs Pillow resizes and samples queries per face in
loader processes. Here the training faces are decoded ONCE into one uint8 array
(N, S, S, 3), copied once to the training device, and every batch is made there:

- the host plans step ``s`` (LR size, each face's index, flip, crop box, HR size and query
  count) with exactly the draws of :class:`~arasfsr.training.data.StepBatches`, so both
  paths train on the same faces, flips, crops and sizes;
- HR targets and bicubic LR inputs are Pillow's bicubic resize done as fixed-point matrix
  products (:mod:`arasfsr.data.resample`): bit-identical to the workers path and to the
  pairs evaluation makes, for the whole batch at once (per-face HR sizes padded);
- LR inputs that need JPEG (``nn-jpeg``, the practical ``mixture``, ``realistic``) are made by the loader
  (in worker processes with ``num_workers``) with the very Pillow code of the workers path,
  from the decoded faces: no faithful JPEG codec runs on a GPU through torch, and these
  LR images are small;
- the queried pixels are drawn on the device (``sample_q`` per face, or all of a face's
  pixels when it has fewer; padded, with ``mask``) by a generator seeded by
  ``(seed, step)``: a batch is still a pure function of the seed and the step.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from ..data.resample import pillow_weights, resample, vertical_first, weight_table
from ..errors import InputError
from ..imageio import read_image
from ..data.degrade import degrade
from .data import StepBatches, draw_augment

_DECODED: dict[tuple[str, ...], np.ndarray] = {}


CACHE_ENV = "ARASFSR_CACHE"  # where decoded training faces are kept (default ~/.cache/arasfsr)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "arasfsr")


def decoded_cache_path(files: list[Path]) -> Path:
    """The cache file of these faces: named by their paths, sizes and modification times."""
    digest = hashlib.sha1()
    for f in files:
        st = f.stat()
        digest.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return cache_dir() / "decoded" / f"faces-{len(files)}-{digest.hexdigest()[:16]}.npy"


def decode_faces(files: list[Path], threads: int | None = None, cache: bool = True) -> np.ndarray:
    """The faces as one (N, S, S, 3) uint8 array, decoded once per process (kept).

    With ``cache``, decoded once per machine: the array is written to :func:`decoded_cache_path`
    and memory-mapped, so that runs side by side share one copy in the page cache (19,785 faces
    are 2.4 GB: a private copy each made four runs run out of memory) and a restart skips the
    decoding."""
    key = tuple(str(f) for f in files)
    if key in _DECODED:
        return _DECODED[key]
    path = decoded_cache_path(files) if cache else None
    if path is not None and path.is_file():
        try:
            out = np.load(path, mmap_mode="c")  # copy-on-write: shared pages, never written
        except (OSError, ValueError):
            out = None
        if out is not None and out.shape[0] == len(files) and out.dtype == np.uint8 and out.ndim == 4:
            _DECODED.clear()
            _DECODED[key] = out
            return out
    first = np.asarray(read_image(files[0])[0])
    if first.shape[0] != first.shape[1]:
        raise InputError(f"{files[0]}: data.pipeline device needs square training faces, got "
                         f"{first.shape[1]}x{first.shape[0]}")
    out = np.empty((len(files), *first.shape), dtype=np.uint8)

    def load(i: int) -> None:
        arr = np.asarray(read_image(files[i])[0])
        if arr.shape != first.shape:
            raise InputError(f"{files[i]}: {arr.shape[1]}x{arr.shape[0]}, but the training faces must all be "
                             f"{first.shape[1]}x{first.shape[0]} for data.pipeline device")
        out[i] = arr

    with ThreadPoolExecutor(threads or min(16, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        list(pool.map(load, range(len(files))))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
            out = np.load(path, mmap_mode="c")
        except OSError:  # a read-only or full cache: keep the private copy
            pass
    _DECODED.clear()  # one data set at a time
    _DECODED[key] = out
    return out


def query_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step, 6]).generate_state(1)[0])


class StepPlans(Dataset):
    """Item ``s``: the host's part of step ``s`` for this rank (small tensors), plus the LR
    inputs the device does not make (JPEG-bearing degradations), made from the decoded faces."""

    def __init__(self, steps: StepBatches, faces: np.ndarray) -> None:
        self.steps, self.faces = steps, faces
        self.on_device = steps.data["degradation"] == "bicubic"

    def __getitem__(self, step: int) -> dict[str, Any]:
        st = self.steps
        lr, hrs, qs = st.plan(step)
        first = st.rank * st.per_rank
        side = self.faces.shape[1]
        face, flip, box, lr_cpu = [], [], [], []
        for i in range(first, first + st.per_rank):
            position = step * st.batch_size + i
            rng = np.random.default_rng([st.seed, position, 3])
            index = st.image_index(position)
            f, b = draw_augment(st.data, rng, (side, side))
            face.append(index)
            flip.append(f)
            box.append(b or (0, 0, side, side))
            if not self.on_device:  # the same draws, the same Pillow calls as StepBatches.sample
                img = Image.fromarray(self.faces[index])
                img = ImageOps.mirror(img) if f else img
                if b is not None:
                    img = img.crop((b[0], b[1], b[0] + b[2], b[1] + b[3]))
                lr_cpu.append(np.asarray(degrade(img, (lr, lr), st.data["degradation"], rng, st.data.get("realistic"))))
        mine = slice(first, first + st.per_rank)
        out: dict[str, Any] = {
            "face": torch.tensor(face), "flip": torch.tensor(flip), "box": torch.tensor(box),
            "hr": torch.tensor(hrs[mine]), "q": torch.tensor(qs[mine]),
            # Python numbers stay on the host (Lightning moves only tensors): no device sync.
            "step": step, "lr_size": lr, "hr_pad": max(hrs), "q_pad": max(qs), "padded": len(set(qs)) > 1,
        }
        if st.data.get("crop_aug"):  # non-square crops: Pillow may resize them vertical pass first
            for key, sizes in (("vfirst_hr", hrs[mine]), ("vfirst_lr", [lr] * len(box))):
                out[key] = torch.tensor([vertical_first(b[2], b[3], n, n) for b, n in zip(box, sizes)])
        if lr_cpu:
            out["lr_u8"] = torch.from_numpy(np.stack(lr_cpu))
        return out


class DeviceBatches:
    """Turns a :class:`StepPlans` item (on the training device) into the training batch."""

    def __init__(self, faces: np.ndarray, data: dict[str, Any], seed: int, batch_size: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.faces_host, self.data, self.seed = faces, data, seed
        self.batch_size, self.rank, self.per_rank = batch_size, rank, batch_size // world_size
        self.side = faces.shape[1]
        self.out_max = self.side if data["max_hr"] is None else min(self.side, int(data["max_hr"]))
        self.device: torch.device | None = None
        self.profile = False
        self.prep_marks: list[tuple[Any, Any]] = []  # with ``profile``: (start, end) of each batch's making

    def _to(self, device: torch.device) -> None:
        if self.device == device:
            return
        self.device = device
        faces = torch.from_numpy(self.faces_host)
        self.faces = faces if device.type == "cpu" else faces.to(device)  # once, ~2.4 GB for all faces
        self.table = weight_table(self.side, self._largest(), str(device), self._smallest())
        self.gen = torch.Generator(device=device)

    def _largest(self) -> int:
        """The largest output side any batch can ask for (HR or LR)."""
        d = self.data
        sizes = [d["lr_size"]] + ([d["hr_size"]] if d["hr_size"] is not None else [])
        most = max(max(s) if isinstance(s, (list, tuple)) else s for s in sizes)
        if d["scale"] is not None:
            lr_max = max(d["lr_size"]) if isinstance(d["lr_size"], (list, tuple)) else d["lr_size"]
            most = max(most, int(round(lr_max * max(d["scale"]))))
        if d["max_hr"]:
            most = min(most, int(d["max_hr"]))
        return max(1, int(most))

    def _smallest(self) -> int:
        """The smallest output side any batch can ask for (the LR side, or a smaller HR)."""
        d = self.data
        lows = [min(v) if isinstance(v, (list, tuple)) else v for v in (d["lr_size"], d["hr_size"]) if v is not None]
        return max(1, int(min(lows)))

    def _weights(self, size: Tensor, pad: int, plan: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(wy, wx): each face's resize matrices to ``size`` (B,), padded to ``pad`` rows."""
        if self.data.get("crop_aug"):
            box = plan["box"]
            wy = pillow_weights(size, box[:, 3], self.side, pad, offset=box[:, 1], device=self.device)
            wx = pillow_weights(size, box[:, 2], self.side, pad, offset=box[:, 0], device=self.device)
            wx = torch.where(plan["flip"].view(-1, 1, 1), wx.flip(-1), wx)
            return wy, wx
        return self.table.rows(size)[:, :pad], self.table.rows(size, plan["flip"])[:, :pad]

    def __call__(self, plan: dict[str, Any]) -> dict[str, Tensor]:
        self._to(plan["face"].device)
        if not self.profile:
            return self.make(plan)
        from .timing import Marks

        marks = Marks(self.device)
        started = marks.now()
        batch = self.make(plan)
        self.prep_marks.append((started, marks.now()))
        return batch

    def make(self, plan: dict[str, Any]) -> dict[str, Tensor]:
        dev, n = self.device, plan["face"].shape[0]
        lr, hr_pad, q_pad = plan["lr_size"], plan["hr_pad"], plan["q_pad"]
        img = self.faces.index_select(0, plan["face"]).permute(0, 3, 1, 2)
        hr_sizes = plan["hr"]
        hr = resample(img, *self._weights(hr_sizes, hr_pad, plan), plan.get("vfirst_hr"))  # (n,3,hr_pad,hr_pad)
        if "lr_u8" in plan:
            lr_img = plan["lr_u8"].permute(0, 3, 1, 2).float() / 255
        else:
            lr_w = self._weights(torch.full_like(hr_sizes, lr), lr, plan)
            lr_img = (resample(img, *lr_w, plan.get("vfirst_lr")) / 255).float()
        # Queries: the q smallest of uniform keys over each face's own pixels.
        cells = hr_pad * hr_pad
        if self.data["sample_q"] is None:
            idx = torch.arange(cells, device=dev).expand(n, cells)
        else:
            self.gen.manual_seed(query_seed(self.seed, plan["step"]))
            keys = torch.rand(self.batch_size, cells, generator=self.gen, device=dev)
            first = self.rank * self.per_rank
            keys = keys[first:first + n]
            yy = torch.arange(hr_pad, device=dev)
            inside = (yy[None, :, None] < hr_sizes[:, None, None]) & (yy[None, None, :] < hr_sizes[:, None, None])
            keys = torch.where(inside.view(n, cells), keys, torch.full_like(keys, 2.0))
            idx = keys.topk(q_pad, dim=1, largest=False, sorted=True).indices
        step = (2.0 / hr_sizes.float())[:, None]
        coord = torch.stack([-1 + step / 2 + step * (idx // hr_pad).float(),
                             -1 + step / 2 + step * (idx % hr_pad).float()], dim=-1)
        gt = hr.flatten(2).gather(2, idx.unsqueeze(1).expand(n, 3, -1)).transpose(1, 2)
        out = {"lr": lr_img, "coord": coord, "gt": (gt / 255).float(),
               "ratio": (lr / hr_sizes.float())[:, None].expand(n, 2).contiguous()}
        if plan["padded"]:
            mask = torch.arange(q_pad, device=dev)[None, :] < plan["q"][:, None]
            out["mask"] = mask
            out["coord"] = torch.where(mask[..., None], coord, torch.zeros_like(coord))
        return out


class DevicePipeline:
    """What ``FaceData`` needs for ``data.pipeline: device``: the decoded faces, the host's
    plans (the loader's dataset) and the device step that makes the batch."""

    def __init__(self, cfg: dict[str, Any], train_files: list[Path]) -> None:
        self.cfg, self.train_files = cfg, train_files
        self.faces: np.ndarray | None = None
        self.batches: DeviceBatches | None = None

    def setup(self) -> None:
        if self.faces is None:
            self.faces = decode_faces(self.train_files)

    def dataset(self, steps: StepBatches) -> StepPlans:
        self.setup()
        self.batches = DeviceBatches(self.faces, steps.data, steps.seed, steps.batch_size, steps.rank, steps.world)
        self.batches.profile = bool(self.cfg["train"].get("profile"))
        return StepPlans(steps, self.faces)

    def workers(self) -> int:
        """Loader processes: the JPEG-bearing LR inputs need them all; bicubic data only
        plans (two keep the plans ahead of the device, off the training process)."""
        workers = int(self.cfg["data"]["num_workers"] or 0)
        return workers if self.cfg["data"]["degradation"] != "bicubic" else min(workers, 2)

    def make(self, plan: dict[str, Any]) -> dict[str, Tensor]:
        return self.batches(plan)
