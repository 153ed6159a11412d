"""``arasfsr upscale``, ``export``, ``models`` and ``demo``: one model on images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import defaults
from ..errors import InputError, ModelError
from .common import (add_amount_options, add_output_options, add_overwrite_option, add_rendering_options,
                     collect_inputs, known_problem, load_renderer, note, output_size_check, plan_outputs,
                     read_inputs)
from .uncertainty import add_uncertainty_option, check_uncertainty_outputs


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("upscale", help="super-resolve images or folders of images")
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    add_output_options(up, file_help="output file, its format from the suffix (one input image)",
                       dir_help="output folder, one NAME.png per input image (created if missing)")
    add_amount_options(up)
    add_rendering_options(up)
    add_uncertainty_option(up)
    up.set_defaults(func=run_upscale)

    exp = sub.add_parser("export", help="export a model to ONNX (dynamic input and output sizes)")
    exp.add_argument("--model", default=defaults.DEFAULT_MODEL, metavar="NAME|PATH",
                     help="model name or .safetensors path")
    exp.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="output file")
    add_overwrite_option(exp, "replace the output if it exists")
    exp.set_defaults(func=run_export)

    models = sub.add_parser("models", help="list the named models")
    models.add_argument("--info", metavar="NAME", help="show one model's card (a name or .safetensors path)")
    models.add_argument("--all", action="store_true", help="also list the untrained architecture presets")
    models.set_defaults(func=run_models)

    demo = sub.add_parser("demo", help="super-resolve the astronaut face from scikit-image at x2, x3.5 and x8")
    demo.add_argument("-o", "--out-dir", type=Path, default=Path("arasfsr-demo"), metavar="DIR",
                      help="where the results go (default arasfsr-demo; its demo files are replaced)")
    add_rendering_options(demo, pixel_limit=False)  # its outputs have fixed, small sizes
    demo.set_defaults(func=run_demo)


def run_upscale(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from ..imageio import make_output_dir, output_notes, remove_empty_dirs, write_image
    from ..uncertainty import write_uncertainty

    files = collect_inputs(args.inputs)
    targets = plan_outputs(files, args.output, args.out_dir, args.overwrite)
    target_of = dict(zip(files, targets))
    if args.uncertainty:
        check_uncertainty_outputs(targets, args.overwrite)
    check_size = output_size_check(args)

    # Read and size-check every input before loading the model, so bad input fails fast.
    def check(f: Path, img: Image.Image) -> None:
        check_size(f, img)
        for text in output_notes(img, target_of[f]):
            note(f"{f}: {text}")

    images = read_inputs(files, check, rgb=False)
    out_dir = args.out_dir if args.out_dir is not None else targets[0].parent
    created = make_output_dir(out_dir)
    written = 0
    try:
        model = load_renderer(args)
        for img, src, dst in tqdm(list(zip(images, files, targets)), desc="upscale", unit="img",
                                  disable=len(images) < 2, file=sys.stderr):
            try:
                out = model.upscale(img, scale=args.scale, size=args.size, chunk_size=args.chunk_size,
                                    max_pixels=args.max_pixels, uncertainty=args.uncertainty)
                out, umap = out if args.uncertainty else (out, None)
                write_image(out, dst, overwrite=args.overwrite)
                if umap is not None:
                    write_uncertainty(umap, dst, overwrite=args.overwrite)
            except Exception as exc:
                message = known_problem(exc)
                if message is None:
                    raise
                if not isinstance(exc, (InputError, ModelError)):
                    message = f"{src}: {message}"
                done = f"; {written} of {len(files)} outputs were written" if len(files) > 1 else ""
                raise InputError(f"{message}{done}") from None
            written += 1
    finally:
        if not written:
            remove_empty_dirs(created)
    if len(images) == 1:
        print(targets[0])
    else:
        print(f"wrote {len(images)} images to {out_dir}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..api import load_model
    from ..atomic import atomic_write
    from ..imageio import refuse_existing
    from ..onnx_engine import export_onnx

    refuse_existing(args.onnx, args.overwrite)
    if not args.onnx.parent.is_dir():
        raise InputError(f"{args.onnx.parent}: no such folder")
    model = load_model(args.model, precision="fp32").model
    atomic_write(args.onnx, lambda tmp: export_onnx(model, tmp))  # never a half-written model
    print(args.onnx)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from ..registry import list_models, resolve

    if args.info:
        print(json.dumps(resolve(args.info).check().info(), indent=2))
        return 0
    rows = list_models(include_presets=args.all)
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        mark = "*" if name == defaults.DEFAULT_MODEL else " "
        state = "trained" if row["trained"] else "untrained preset"
        print(f"{mark} {name:<{width}}  {row['arch']:<8}  {state:<16}  {row['description']}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo as demo

    for path in demo(args.out_dir, model=load_renderer(args), chunk_size=args.chunk_size):
        print(path)
    return 0
