"""Runtime policy of inference: threads, precision, chunks of queries, tiles of the input.

The models compute; this module decides, from the device and the free memory, how:
``auto`` precision resolves to bf16 where the hardware multiplies bf16 natively, the
chunk of queries rendered per pass is sized to the cache (CPU) or the free memory, a
large input is encoded in overlapping tiles, and torch uses as many threads as this
process may really run on. (OpenMP's wait policy is set in ``arasfsr/__init__.py``,
before torch loads.)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .defaults import DEFAULT_MAX_PIXELS
from .errors import DeviceError, SettingError
from .openmp import WAIT_POLICY

PRECISIONS = ("auto", "fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Queries per pass in fp32 (bf16: twice as many, the same bytes). On a CPU a chunk whose
# activations stay small runs fastest, and 16,384 queries make blocks over 32 MB that malloc
# takes fresh from the system on every pass (see keep_freed_memory); 2,048 fp32 / 4,096 bf16
# are the fastest sizes `python -m tools.bench.decoder_ab --parts chunk` found
# (benchmarks/results/decoder-ab/). GPUs want big chunks.
PREFERRED_CHUNK = {"cpu": 2048, "cuda": 65536}
MIN_CHUNK = 256

# Inputs up to this many pixels are encoded whole (exact, and no work repeated on the
# overlaps); larger ones in tiles of TILE_SIDE with TILE_MARGIN pixels of context on
# each side. The margin covers the encoders' effective receptive field: tiled vs whole
# >= 50 dB PSNR (docs/performance.md, "Memory and large inputs"; tests/test_fast.py checks it).
TILE_PIXELS = 512 * 512
TILE_SIDE = 384
TILE_MARGIN = 16


def tile_side(h: int, w: int) -> int:
    """Side of the LR tiles for an ``h x w`` input: the whole input when it is small enough."""
    return max(h, w) if h * w <= TILE_PIXELS else TILE_SIDE


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container's CPU quota
    (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), which the mask does not show."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, math.ceil(quota))) if quota else n


def _cgroup_cpu_quota() -> float | None:
    for path, period_path in (("/sys/fs/cgroup/cpu.max", None),
                              ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(path) as fh:
                fields = fh.read().split()
            if period_path is not None:
                with open(period_path) as fh:
                    fields.append(fh.read().strip())
        except OSError:
            continue
        if len(fields) == 2 and fields[0] not in ("max", "-1") and float(fields[1]) > 0:
            return float(fields[0]) / float(fields[1])
        return None
    return None


# glibc's malloc serves blocks above a threshold (128 kB, rising to at most 32 MB) with fresh
# mmap pages and gives freed memory back to the system: every chunk of queries then faults
# its activations (megabytes) in anew, and on a small CPU those page faults cost more than
# the render itself. Blocks up to 32 MB kept in the heap, untrimmed, take none
# (`python -m tools.bench.decoder_ab --parts memory`, benchmarks/results/decoder-ab/).
# (PyTorch's CPU performance guide gets the same from jemalloc or tcmalloc, which need
# LD_PRELOAD.)
KEEP_BLOCKS_UP_TO = 32 * 2**20  # glibc's largest mmap threshold on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # mallopt parameters (malloc.h)


def _glibc_function(name: str) -> Callable[..., int] | None:
    """glibc's ``name`` (``mallopt``, ``malloc_trim``), or None where the C library is not
    glibc (musl, macOS, Windows)."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed blocks of up to 32 MB instead of returning them to
    the system (see above). A no-op where the C library is not glibc, or when the user set
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``. Returns whether it applied."""
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BLOCKS_UP_TO)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * KEEP_BLOCKS_UP_TO))


def keep_all_freed_memory() -> bool:
    """Serve every block from the heap, however large, and never trim it: training allocates
    the same large activations (over glibc's 32 MB mmap ceiling) step after step, and with
    fresh mmap pages each time a quarter of a CPU step went to page faults. For training
    processes only (a render's memory would creep up). A no-op without glibc or when the
    user set ``MALLOC_MMAP_MAX_`` / ``MALLOC_TRIM_THRESHOLD_``. Returns whether it applied."""
    if any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``). With freed
    blocks kept, a tiled render's resident memory crept up tile after tile, so tiled
    renders call this between tiles (the next tile faults its pages in again). A no-op
    without glibc."""
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def configure_threads() -> int:
    """Intra-op threads for inference: no more than :func:`usable_cpus` (more threads
    than CPUs wait on each other at every operation), never more than the user set
    (``OMP_NUM_THREADS``, ``torch.set_num_threads``). Returns the count in use. Also
    keeps freed memory for reuse (:func:`keep_freed_memory`)."""
    keep_freed_memory()
    n = usable_cpus()
    if "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() > n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def openmp_spins() -> bool:
    """Whether OpenMP's threads spin while they wait: it was loaded (with torch) before
    ``import arasfsr`` could ask for the passive policy, and the user set no policy."""
    return WAIT_POLICY == "default"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, busy CPU s of the whole machine, CPU s of this process), or None without /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait; steal counts as busy
    mine = os.times()
    return time.monotonic(), (sum(fields[:8]) - idle) / _CLOCK_TICKS, mine.user + mine.system


def _others_busy(before: tuple[float, float, float], after: tuple[float, float, float]) -> float | None:
    """CPUs other processes kept busy between two snapshots (None: too short to tell)."""
    wall = after[0] - before[0]
    if wall < 0.05:
        return None
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


class ThreadPolicy:
    """Intra-op threads of one :class:`~arasfsr.api.Upscaler`'s renders.

    ``import arasfsr`` asks OpenMP for passive waiting (``OMP_WAIT_POLICY``), which OpenMP
    reads once, when torch loads. Where torch was imported first its threads spin while
    they wait, and with another program on one of the cores every small operation waits
    for a thread that is not running (a 64->512 render took 6-8x as long). Then each
    render uses only the CPUs the other processes leave free, measured over the previous
    render (the first time over a 0.1 s look at /proc/stat), and gives the user's thread
    count back after. With the passive policy in force (or one the user chose) this is
    :func:`configure_threads` alone. One policy serves the whole process
    (:func:`thread_policy`): the load it measures is the machine's.
    """

    PROBE_S = 0.1

    def __init__(self) -> None:
        self.threads = configure_threads()
        self.adaptive = openmp_spins() and "OMP_NUM_THREADS" not in os.environ and self.threads > 1
        self.free = self.threads
        if self.adaptive:
            before = _cpu_snapshot()
            if before is None:
                self.adaptive = False
            else:
                time.sleep(self.PROBE_S)
                self._update(before, _cpu_snapshot())

    # A core counts as taken from 85 % busy: beside one other process 60 % busy two spinning
    # threads still rendered 64->512 faster than one; at 90 % busy one thread was faster.
    TAKEN = 0.85

    def _update(self, before: tuple[float, float, float] | None, after: tuple[float, float, float] | None) -> None:
        busy = _others_busy(before, after) if before and after else None
        if busy is not None:
            self.free = max(1, min(self.threads, usable_cpus() - math.floor(busy + 1 - self.TAKEN)))

    @contextmanager
    def rendering(self) -> Iterator[int]:
        """Around one render: the thread count to use (set, then restored)."""
        if not self.adaptive:
            yield torch.get_num_threads()
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.free)
        before = _cpu_snapshot()
        try:
            yield self.free
        finally:
            self._update(before, _cpu_snapshot())
            torch.set_num_threads(previous)


# The faces the learned models were trained on (protocols A-C and P: 12 to 96 px); a face
# more than FAR_FACTOR times outside gets a warning: a 512-px face comes back within 0.2
# grey levels of bicubic.
TRAINED_FACE_PX = (12, 96)
FAR_FACTOR = 2


def face_size_warning(h: int, w: int, model_name: str) -> str | None:
    """One line for a face of ``h x w`` px far outside :data:`TRAINED_FACE_PX`, else None."""
    low, high = TRAINED_FACE_PX
    if min(h, w) * FAR_FACTOR >= low and max(h, w) <= high * FAR_FACTOR:
        return None
    expect = "little more than bicubic" if max(h, w) > high * FAR_FACTOR else "a blurred guess"
    return (f"arasfsr: warning: the input is {w}x{h} px, far outside the {low}-{high} px faces "
            f"{model_name} was trained on; expect {expect}")


# Inputs whose shorter side is at least this many pixels are resized by bicubic instead of
# the learned models (unless forced): from there on the default model's outputs came
# within half a grey level of bicubic on real faces (x2: 0.40 at 256 px, 0.70 at 192; x4:
# 0.83 at 192), at many times the cost (benchmarks/results/large-inputs/realworld.json).
MODEL_DETAIL_SIDE = 256


def beyond_model_detail(h: int, w: int) -> bool:
    return min(h, w) >= MODEL_DETAIL_SIDE


def large_input_note(h: int, w: int, model_name: str) -> str:
    return (f"arasfsr: note: the input is {w}x{h} px; from {MODEL_DETAIL_SIDE} px a side {model_name} adds no "
            f"detail over bicubic, so bicubic was used (--force-model, or force_model=True, runs the model)")


def is_downscale(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """True when the output is not larger than the input on either axis and smaller on one
    (equal sizes are x1 restoration, which the models are trained for)."""
    return out_hw[0] <= in_hw[0] and out_hw[1] <= in_hw[1] and tuple(out_hw) != tuple(in_hw)


@lru_cache(maxsize=1)
def thread_policy() -> ThreadPolicy:
    """The process's :class:`ThreadPolicy`, made on first use."""
    return ThreadPolicy()


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``fp32`` or ``bf16``: ``auto`` is ``bf16`` where the device multiplies bf16 matrices
    natively (CPUs with AMX or AVX-512 BF16, GPUs with bf16), else ``fp32``."""
    if precision not in PRECISIONS:
        raise SettingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware: Intel AMX, or AVX-512 BF16
    (AMD Zen 4 and later, Intel Cooper Lake and later). On such a CPU the bf16 decoder
    renders 64->512 in about half the fp32 time (docs/performance.md) and stays above
    50 dB of the fp32 output (tests/test_fast.py); elsewhere bf16 is emulated and slower."""
    flags = cpu_flags()
    if flags:
        return bool({"amx_bf16", "avx512_bf16"} & flags)
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def compute_dtype(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype of the fast path's hidden layers for ``precision``."""
    return DTYPES[resolve_precision(precision, device)]


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager[Any]:
    """Reduced-precision matrix products for the hidden layers (a no-op in fp32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def check_chunk_size(chunk_size: Any) -> int | None:
    """A caller's chunk size: None (automatic) or a positive integer."""
    return _positive_or_none("chunk_size", chunk_size)


def _positive_or_none(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SettingError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def check_sampling(sample_z: Any, seed: Any) -> int | None:
    """A caller's z-sampling request: the seed (None: unseeded), or SettingError."""
    if not isinstance(sample_z, bool):
        raise SettingError(f"sample_z must be True or False, got {sample_z!r}")
    if seed is None:
        return None
    if not sample_z:
        raise SettingError("a seed is for sampling z; ask for sample_z too")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise SettingError(f"seed must be an integer from 0 to 2**63-1, got {seed!r}")
    return int(seed)


def check_device(device: Any) -> torch.device:
    """A device that exists here and computes: cpu, cuda[:N] (when present), mps (when present)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown device {device!r}; use cpu, or cuda (cuda:N) where there is a GPU") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA device is available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{dev}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return dev
        raise DeviceError("mps (Apple GPU) was requested but is not available here; use cpu")
    raise DeviceError(f"device {str(dev)!r} cannot run arasfsr; use cpu, or cuda where there is a GPU")


@dataclass(frozen=True)
class RenderSettings:
    """How an :class:`~arasfsr.api.Upscaler` renders, set once and checked once
    (:meth:`checked`); a change makes a new, checked copy (:meth:`replace`).

    - ``precision``: the implicit decoder's, "auto", "fp32" or "bf16" (see :func:`resolve_precision`).
    - ``chunk_size``: queries per forward pass (None: automatic, from the free memory).
    - ``max_pixels``: outputs with more pixels are refused (None: no limit).
    - ``sample_z``, ``seed``: draw ARASFSR's frequency latent z (from ``seed``, reproducible)
      instead of using its mean.
    - ``batch_size``: images of one size per forward pass in ``upscale_many`` (None: all).
    - ``force_model``: run a learned model on inputs larger than it adds detail to
      (:data:`MODEL_DETAIL_SIDE`); by default those are resized by bicubic, with a note.
    """

    precision: str = "auto"
    chunk_size: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    sample_z: bool = False
    seed: int | None = None
    batch_size: int | None = None
    force_model: bool = False

    def checked(self) -> RenderSettings:
        """These settings, each refused with a one-line :class:`SettingError` if unusable."""
        if self.precision not in PRECISIONS:
            raise SettingError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.force_model, bool):
            raise SettingError(f"force_model must be True or False, got {self.force_model!r}")
        return dataclasses.replace(self, chunk_size=_positive_or_none("chunk_size", self.chunk_size),
                                   max_pixels=check_max_pixels(self.max_pixels),
                                   seed=check_sampling(self.sample_z, self.seed),
                                   batch_size=_positive_or_none("batch_size", self.batch_size))

    def replace(self, **changes: Any) -> RenderSettings:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown render setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).checked()


def check_max_pixels(value: Any) -> int | None:
    """A pixel limit: None (no limit) or a positive whole number (``2e7`` is fine, NaN is not)."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer() and value >= 1:
        return int(value)
    raise SettingError(f"max_pixels must be a positive whole number or None (no limit), got {value!r}")


# --- progress of one large render ------------------------------------------------------

_PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("arasfsr_render_progress", default=None)


@contextmanager
def render_progress(callback: Callable[[int], None] | None) -> Iterator[None]:
    """Within the block, renders in this thread report each finished chunk to
    ``callback(output pixels done, all images of the batch)``."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def report_progress(pixels: int) -> None:
    callback = _PROGRESS.get()
    if callback is not None:
        callback(pixels)


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free for a chunk: CUDA's free memory, or MemAvailable from /proc/meminfo."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 30  # unknown: assume 2 GiB


def auto_chunk_size(bytes_per_query: int, device: torch.device | str = "cpu", itemsize: int = 4) -> int:
    """Queries per pass: the device's preferred size (for activations of ``itemsize``
    bytes), less if a chunk's working set would take more than an eighth of the free memory."""
    device = torch.device(device)
    fits = available_memory(device) // 8 // max(1, bytes_per_query)
    preferred = PREFERRED_CHUNK.get(device.type, 8192) * 4 // max(1, min(4, itemsize))
    return int(max(MIN_CHUNK, min(preferred, fits)))
