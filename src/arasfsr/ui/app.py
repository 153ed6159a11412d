"""The local web app (Gradio): upscale a face, restore a photo, compare models.

``serve()`` starts it on the loopback address; ``build_app()`` gives the Blocks for tests
or embedding. The work itself is in :mod:`arasfsr.ui.jobs`; this file is the page and the
translation of problems into messages in it (``gr.Error``), never a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

# Before Gradio is imported: no usage statistics, no version check, nothing fetched.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from ..errors import memory_problem  # noqa: E402
from ..errors import ArasfsrError, InputError  # noqa: E402
from ..defaults import DEFAULT_FACE_MODEL  # noqa: E402
from ..registry import DEFAULT_MODEL, list_models  # noqa: E402
from . import jobs  # noqa: E402

MAX_UPLOAD = "100mb"  # bytes per uploaded file; pixels are limited before decoding (jobs.MAX_INPUT_PIXELS)
MAX_QUEUE = 32  # requests waiting; the jobs themselves run one at a time (concurrency_limit=1)
PNG = "png"  # Gradio's image outputs default to lossy WebP


def trained_models() -> list[str]:
    """Models with weights in this installation (and bicubic), the default first."""
    return [name for name, row in list_models().items() if row["trained"]]


@contextmanager
def page_errors():
    """Problems become one message in the page; bugs are logged here and named as bugs there."""
    try:
        yield
    except gr.Error:
        raise
    except ArasfsrError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        memory = memory_problem(exc, chunk_option=False)
        if memory is not None:
            raise gr.Error(memory, print_exception=False) from None
        traceback.print_exc(file=sys.stderr)
        raise gr.Error(f"internal error, this is a bug in arasfsr ({type(exc).__name__}: {text})",
                       print_exception=False) from None


def _size_controls(default_scale: str = "4", default_size: tuple[int, int] = (256, 256)):
    """How big the output is: a scale (S, or SXxSY width first) or an exact W x H."""
    with gr.Group():
        mode = gr.Radio([jobs.BY_SCALE, jobs.BY_SIZE], value=jobs.BY_SCALE, label="Output size by")
        scale = gr.Textbox(default_scale, label="Scale: S, or SX x SY (width first), e.g. 3.5 or 2x3")
        with gr.Row():
            # No rounding in the page (precision=0 would make 10.5 into 10): the job refuses what is not whole.
            width = gr.Number(default_size[0], label="Width W (exact size)")
            height = gr.Number(default_size[1], label="Height H (exact size)")
    # Typing a width or height means "exact size", editing the scale means "scale": in the
    # browser (js, no round trip), so a click right after typing already sends the right mode.
    for box, choice in ((width, jobs.BY_SIZE), (height, jobs.BY_SIZE), (scale, jobs.BY_SCALE)):
        box.input(None, None, mode, js=f"() => {choice!r}", api_visibility="private", queue=False)
    return mode, scale, width, height


def _upload(label: str, elem_id: str, preview) -> gr.File:
    """A file drop with the image shown under it (and its size, or the problem with it)."""
    file = gr.File(label=label, file_types=["image"], elem_id=elem_id)
    shown = _image("Input", height=160)
    size = gr.Markdown()
    # Previews decode uploads too: one at a time across the page, like the jobs.
    file.change(preview, file, [shown, size], api_visibility="private", concurrency_id="previews",
                concurrency_limit=1)
    return file


def _one_model_inputs(tab: str, preview, models: list[str], default_model: str, upload: str, model: str,
                      button: str, **size) -> tuple[list, gr.Button]:
    """The inputs of a job on one image with one model (upload, model, output size) and its button."""
    inputs = [_upload(upload, f"{tab}-input", preview), gr.Dropdown(models, value=default_model, label=model),
              *_size_controls(**size)]
    return inputs, gr.Button(button, variant="primary", elem_id=f"{tab}-button")


def _on_click(button: gr.Button, fn, inputs: list, outputs: list, api_name: str) -> None:
    """A job: one at a time across the whole app (the CPU is the bottleneck), named in the API."""
    button.click(fn, inputs, outputs, api_name=api_name, concurrency_id="models", concurrency_limit=1)


def _image(label: str, **kw) -> gr.Image:
    return gr.Image(label=label, format=PNG, type="pil", interactive=False, buttons=["download", "fullscreen"], **kw)


def build_app(default_model: str = DEFAULT_MODEL, cache: jobs.ModelCache | None = None) -> gr.Blocks:
    """The three-tab page; ``default_model`` is preselected (a name or a checkpoint path), and
    the Restore tab preselects the face model unless another model was asked for."""
    cache = cache or jobs.ModelCache()
    outputs_root = Path(tempfile.mkdtemp(prefix="arasfsr-ui-"))
    models = trained_models()
    if default_model not in models:
        models.insert(0, default_model)
    face_model = DEFAULT_FACE_MODEL if default_model == DEFAULT_MODEL and DEFAULT_FACE_MODEL in models else default_model

    def preview(path):
        if not path:
            return None, ""
        with page_errors():
            img, notes = jobs.read_upload(path)
        return img, f"{img.width}×{img.height}" + "".join(f"; {n}" for n in notes)

    def upscale(path, model, mode, scale, width, height, progress=gr.Progress()):
        with page_errors():
            r = jobs.upscale_face(cache, path, model, mode, scale, width, height,
                                  jobs.new_workdir(outputs_root), lambda f, d: progress(f, desc=d))
        return r.input_enlarged, r.bicubic, r.result, (r.bicubic, r.result), r.info, str(r.png)

    def restore(path, model, mode, scale, width, height, progress=gr.Progress()):
        with page_errors():
            r = jobs.restore_photo(cache, path, model, mode, scale, width, height,
                                   jobs.new_workdir(outputs_root), lambda f, d: progress(f, desc=d))
        if not r.crops:
            gr.Warning("no face found in the photo; it is up-scaled without face restoration")
        return r.detected, r.restored, r.compare, r.crops, r.info, str(r.zip)

    def compare(path, names, simulate, shrink, mode, scale, width, height, progress=gr.Progress()):
        with page_errors():
            r = jobs.compare_models(cache, path, list(names or []), bool(simulate), shrink, mode, scale, width,
                                    height, jobs.new_workdir(outputs_root), lambda f, d: progress(f, desc=d))
        return r.grid, r.outputs, r.table, str(r.png)

    with gr.Blocks(title="arasfsr", analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown("# arasfsr: face super-resolution at any size\n"
                    "Everything runs on this computer. Outputs are lossless PNG; outputs above "
                    f"{jobs.MAX_PIXELS:,} pixels (4096×4096) are refused.")
        with gr.Tab("Upscale a face", id="upscale"):
            with gr.Row():
                with gr.Column(scale=1):
                    up_inputs, up_button = _one_model_inputs("upscale", preview, models, default_model,
                                                             "Face image", "Model", "Upscale")
                with gr.Column(scale=2):
                    up_info = gr.Markdown(elem_id="upscale-info")
                    with gr.Row():
                        up_images = [_image(label) for label in ("Input (nearest)", "Bicubic", "Result")]
                    up_slider = gr.ImageSlider(label="Before / after: bicubic | model", format=PNG, type="pil",
                                               interactive=False, max_height=360)
                    up_png = gr.File(label="Download PNG", interactive=False, elem_id="upscale-download")
            _on_click(up_button, upscale, up_inputs, [*up_images, up_slider, up_info, up_png], "upscale")

        with gr.Tab("Restore a photo", id="restore"):
            with gr.Row():
                with gr.Column(scale=1):
                    rs_inputs, rs_button = _one_model_inputs("restore", preview, models, face_model, "Photo",
                                                             "Face model", "Restore", default_scale="2",
                                                             default_size=(1920, 1080))
                with gr.Column(scale=2):
                    rs_info = gr.Markdown()
                    with gr.Row():
                        rs_images = [_image(label) for label in ("Faces found", "Restored photo")]
                    rs_compare = _image("Input | bicubic | restored")
                    rs_crops = gr.Gallery(label="Restored faces", format=PNG, columns=6, height=220, object_fit="contain")
                    rs_zip = gr.File(label="Download all (zip)", interactive=False)
            _on_click(rs_button, restore, rs_inputs, [*rs_images, rs_compare, rs_crops, rs_info, rs_zip], "restore")

        with gr.Tab("Compare models", id="compare"):
            with gr.Row():
                with gr.Column(scale=1):
                    cm_file = _upload("Face image", "compare-input", preview)
                    cm_models = gr.CheckboxGroup(models, value=list(dict.fromkeys(["bicubic", default_model])),
                                                 label="Models")
                    cm_simulate = gr.Checkbox(True, label="Simulate a low-resolution input: shrink the image "
                                                         "first, then compare each model with it (PSNR, SSIM)")
                    cm_shrink = gr.Number(4, label="Shrink by")
                    gr.Markdown("Without simulation the image is the input and the size below applies:")
                    cm_controls = _size_controls()
                    cm_button = gr.Button("Compare", variant="primary")
                with gr.Column(scale=2):
                    cm_grid = _image("Side by side")
                    cm_table = gr.Markdown()
                    cm_gallery = gr.Gallery(label="Each model", format=PNG, columns=4, height=260, object_fit="contain")
                    cm_png = gr.File(label="Download the picture (PNG)", interactive=False)
            _on_click(cm_button, compare, [cm_file, cm_models, cm_simulate, cm_shrink, *cm_controls],
                      [cm_grid, cm_gallery, cm_table, cm_png], "compare")
    app.outputs_root = outputs_root
    return app


def serve(host: str = "127.0.0.1", port: int | None = None, model: str = DEFAULT_MODEL,
          cache: jobs.ModelCache | None = None) -> None:
    """Serve the app until interrupted; the model is loaded first so a bad name fails here."""
    cache = cache or jobs.ModelCache()
    cache.model(model)
    app = build_app(model, cache)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"arasfsr: serving on {host}: other computers on the network can use this app", file=sys.stderr)
    # SIGTERM (a service manager, a test) stops the server like Ctrl-C, so the cleanup below runs.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            # quiet: Gradio's own lines include a share=True hint that a command-line user cannot act on.
            app.queue(max_size=MAX_QUEUE).launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD,
                                                 show_error=False, footer_links=["settings"], quiet=True,
                                                 prevent_thread_lock=True)
        except OSError as exc:  # the port is taken, the address is not this computer's
            where = f"{host}:{port}" if port else f"{host}, ports 7860-7959"
            raise InputError(f"cannot serve on {where}: the port is taken or the address is not this computer's "
                             f"({str(exc).splitlines()[0][:80]}); choose another with --port or --host") from None
        print(f"arasfsr: the web app is at {app.local_url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        try:
            while app.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            app.close()
    finally:
        shutil.rmtree(app.outputs_root, ignore_errors=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
