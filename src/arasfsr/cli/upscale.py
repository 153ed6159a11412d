"""``arasfsr upscale``, ``export``, ``models`` and ``demo``: one model on images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import defaults
from ..errors import InputError
from .common import (add_amount_options, add_folder_options, add_output_options, add_overwrite_option,
                     add_rendering_options, load_renderer, output_size_check, parse_count, plan_folder_run)
from .uncertainty import add_uncertainty_option, outputs_with_maps


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("upscale", help="super-resolve images or folders of images")
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    add_output_options(up, file_help="output file, its format from the suffix (one input image)",
                       dir_help="output folder, one NAME.png per input image (created if missing)")
    add_amount_options(up)
    add_rendering_options(up)
    add_uncertainty_option(up)
    up.add_argument("--batch-size", type=parse_count, default=1, metavar="N",
                    help="render up to N inputs of the same size in one forward pass (default 1)")
    up.add_argument("--sample-z", action="store_true",
                    help="draw ARASFSR's latent z as the authors' code does (default: its mean, deterministic)")
    up.add_argument("--seed", type=int, metavar="N", help="seed for --sample-z (reproducible draws)")
    add_folder_options(up)
    ray = up.add_argument_group("Ray (pip install 'arasfsr[ray]')")
    ray.add_argument("--ray", action="store_true",
                     help="run on Ray: a local instance, or the cluster of --ray-address; inputs and --out-dir "
                          "must be on storage every node sees")
    ray.add_argument("--ray-address", metavar="ADDRESS",
                     help="the Ray cluster to join, e.g. auto (the one `ray start` runs here) or HEAD:6379; "
                          "implies --ray")
    ray.add_argument("--ray-actors", type=parse_count, default=None, metavar="N",
                     help="model copies (Ray actors) to run, one GPU each with --device cuda "
                          "(default: one per CPU, or per GPU)")
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
    from ..folders import UpscaleSettings, batches, probe_size, upscale_items
    from ..runtime import RenderSettings

    if args.seed is not None and not args.sample_z:
        raise InputError("--seed is for --sample-z; add --sample-z")
    RenderSettings(args.precision, args.chunk_size, args.max_pixels, args.sample_z, args.seed).checked()
    outputs = outputs_with_maps(args.uncertainty)
    run, out_dir = plan_folder_run(args, "upscale", outputs)
    check_size = output_size_check(args)
    run.check(lambda item: probe_size(item, check_size))  # every header and size, before any work
    settings = UpscaleSettings(args.scale, args.size, args.overwrite, args.uncertainty, args.skip_existing)
    if not run.pending:
        return run.finish(out_dir)
    run.start(out_dir)
    with run.running():
        if args.ray or args.ray_address:
            from ..distributed import upscale_items_on_ray

            upscale_items_on_ray(run, settings, args.model, address=args.ray_address, batch_size=args.batch_size,
                                 device=args.device, precision=args.precision, actors=args.ray_actors,
                                 engine=args.engine, render=render_settings(args))
        else:
            model = load_renderer(args)
            for batch in batches(run.pending, args.batch_size):
                upscale_items(model, batch, settings, run)
                run.advance(len(batch))
    return run.finish(out_dir, extra=lambda item: outputs(item.dst)[1:])


def render_settings(args: argparse.Namespace) -> dict:
    """The render settings of the command line, for a model loaded elsewhere (a Ray actor)."""
    return {"chunk_size": args.chunk_size, "max_pixels": args.max_pixels, "sample_z": args.sample_z,
            "seed": args.seed, "force_model": args.force_model}


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
    from ..registry import WHERE_RESEARCH, list_models, missing_research_models, resolve

    if args.info:
        print(json.dumps(resolve(args.info).check().info(), indent=2))
        return 0
    rows = list_models(include_presets=args.all)
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        mark = "*" if name == defaults.DEFAULT_MODEL else " "
        state = "trained" if row["trained"] else "untrained preset"
        print(f"{mark} {name:<{width}}  {row['arch']:<8}  {state:<16}  {row['description']}")
    if missing := missing_research_models():
        print(f"  not here: {len(missing)} research models ({', '.join(missing)}); {WHERE_RESEARCH}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo as demo

    for path in demo(args.out_dir, model=load_renderer(args)):
        print(path)
    return 0
