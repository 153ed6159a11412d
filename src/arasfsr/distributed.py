"""Super-resolve folders of any size on a Ray cluster (optional extra: ``pip install 'arasfsr[ray]'``).

    from arasfsr.distributed import upscale_dataset
    records = upscale_dataset(["faces/"], "big/", size=(256, 256), skip_existing=True)

The same as ``arasfsr upscale faces/ --out-dir big/ --size 256x256 --skip-existing --ray``.
Ray Data streams the inputs to actors, each holding one copy of the model (one GPU each
with ``device="cuda"``); an actor reads, super-resolves and writes its batches with the
functions of ``arasfsr upscale`` itself (:func:`arasfsr.cli.runs.upscale_items`), so the
outputs are the same files, written atomically, with the same skip-existing semantics.
The images are read by arasfsr's reader, not ``ray.data.read_images``: it keeps grayscale,
transparency, the colour profile and EXIF, applies the EXIF orientation and refuses
damaged files. Inputs and the output folder must be at the same path on every node
(shared storage), as for any job that writes files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .defaults import DEFAULT_MAX_PIXELS, DEFAULT_MODEL
from .errors import InputError

if TYPE_CHECKING:
    from .api import Scale
    from .folders import FolderRun, UpscaleSettings

INSTALL_HINT = "Ray is not installed: pip install 'arasfsr[ray]'"


def upscale_dataset(inputs: Sequence[str | Path], out_dir: str | Path, *, model: str | Path = DEFAULT_MODEL,
                    scale: Scale | None = None, size: tuple[int, int] | None = None, recursive: bool = False,
                    overwrite: bool = False, skip_existing: bool = False, batch_size: int = 8,
                    device: str = "cpu", precision: str = "auto", chunk_size: int | None = None,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS, actors: int | None = None,
                    address: str | None = None, report: str | Path | None = None) -> list[dict]:
    """Super-resolve the images ``inputs`` (files and folders) into ``out_dir/NAME.png`` on Ray.

    ``scale``/``size`` as in :meth:`arasfsr.api.Upscaler.upscale`. Outputs that exist are
    refused (before any work) unless ``overwrite`` replaces them or ``skip_existing``
    leaves their inputs, which finishes a run that was stopped. An input that fails is
    recorded and the others go on. ``actors`` model copies run (default one per CPU, or
    per GPU with ``device="cuda"``), each rendering up to ``batch_size`` images of one
    size per forward pass. Ray is started locally unless it runs already or ``address``
    names a cluster ("auto", "HEAD:6379").

    Returns one record per input: ``{"input", "output", "status" ("ok", "failed",
    "skipped"), "message"}``, also written to ``report`` (JSON) if given.
    """
    from .api import output_size
    from .folders import FolderRun, UpscaleSettings, collect_sources, plan_items
    from .runtime import RenderSettings

    out_dir = Path(out_dir)
    output_size((1, 1), scale, size, None)  # a bad scale or size fails before anything starts
    sources = collect_sources([str(p) for p in inputs], recursive, exclude=out_dir)
    render = RenderSettings(precision, chunk_size, max_pixels).checked()
    run = FolderRun(plan_items(sources, None, out_dir, overwrite, skip_existing), keep_going=True,
                    report=None if report is None else Path(report), skip_existing=skip_existing)
    run.check_report_path()
    if run.pending:
        run.start(out_dir)
    with run.running():
        upscale_items_on_ray(run, UpscaleSettings(scale, size, overwrite, skip_existing=skip_existing), model,
                             address=address, batch_size=batch_size, device=device, precision=precision,
                             actors=actors, render={"chunk_size": render.chunk_size, "max_pixels": render.max_pixels})
    return [item.to_json() for item in run.items]


def upscale_items_on_ray(run: FolderRun, settings: UpscaleSettings, model: str | Path, *,
                         address: str | None = None, batch_size: int = 8, device: str = "cpu",
                         precision: str = "auto", actors: int | None = None, engine: str = "torch",
                         render: dict | None = None) -> None:
    """Render ``run``'s pending items on Ray actors and record what became of each;
    ``render``: each actor's render settings (:class:`arasfsr.runtime.RenderSettings`)."""
    pending = run.pending
    if not pending:
        return
    ray = _start_ray(address)
    gpus = 1 if device == "cuda" else 0
    available = int(ray.cluster_resources().get("GPU" if gpus else "CPU", 0))
    if gpus and not available:
        raise InputError("--device cuda: the Ray cluster has no GPU")
    count = min(actors or max(1, available), len(pending))
    # Inputs of one size next to each other, so that Ray's batches can share a forward pass.
    order = sorted(range(len(pending)), key=lambda i: (repr(pending[i].key), i))
    rows = [{"index": i, "src": str(pending[i].src), "dst": str(pending[i].dst)} for i in order]
    results = ray.data.from_items(rows).map_batches(
        _UpscaleActor, fn_constructor_kwargs={"model": str(model), "device": device, "precision": precision,
                                              "engine": engine, "settings": settings, "render": render or {}},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=count), num_cpus=1, num_gpus=gpus)
    for row in results.iter_rows():
        item = pending[int(row["index"])]
        item.status, item.message = str(row["status"]), str(row["message"])
        run.advance()


def _start_ray(address: str | None):
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # arasfsr's own bar counts the images
    return ray


class _UpscaleActor:
    """One copy of the model in a Ray actor; called with batches of ``{index, src, dst}``."""

    def __init__(self, model: str, device: str, precision: str, engine: str, settings: UpscaleSettings,
                 render: dict) -> None:
        from .api import load_model

        self.model = load_model(model, device=device, precision=precision, engine=engine, **render)
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .folders import FolderRun, Item, upscale_items

        items = [Item(Path(src), Path(dst)) for src, dst in zip(batch["src"], batch["dst"])]
        upscale_items(self.model, items, self.settings,
                      FolderRun(items, keep_going=True, skip_existing=self.settings.skip_existing))
        return {"index": batch["index"], "status": np.array([item.status for item in items]),
                "message": np.array([item.message for item in items])}
