"""What each CLI sub-command does, on top of the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from PIL import Image
from tqdm import tqdm

from .api import load_model, output_size
from .atomic import atomic_write
from .errors import InputError, ModelError
from .evaluation.commands import cmd_compare, cmd_eval  # noqa: F401  (dispatched by name)
from .imageio import (IMAGE_SUFFIXES, check_output_dir, check_output_path, image_files, input_path_problem,
                      make_output_dir, one_line, output_notes, read_image, refuse_existing, remove_empty_dirs,
                      write_image)


def note(message: str) -> None:
    print(f"arasfsr: {message}", file=sys.stderr)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files named directly, and the images inside named folders (sorted, not recursive)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = image_files(path, skip_hidden=True)
            if not found:
                raise InputError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif (problem := input_path_problem(path)) is None:
            files.append(path)
        else:
            raise InputError(f"{path}: {problem}")
    return files


def read_inputs(files: list[Path], check: Callable[[Path, Image.Image], None] | None = None,
                rgb: bool = True) -> list[Image.Image]:
    """Every input read (and ``check``-ed), its conversion notes printed, before any work,
    so that a bad input fails before anything is written. ``rgb=False`` keeps grayscale and alpha."""
    images = []
    for f in files:
        img, notes = read_image(f, rgb=rgb)
        for text in notes:
            note(f"{f}: {text}")
        if check is not None:
            check(f, img)
        images.append(img)
    return images


def plan_outputs(files: list[Path], output: Path | None, out_dir: Path | None, overwrite: bool) -> list[Path]:
    """One output path per input; refuses clashes and outputs that exist (without overwrite)."""
    if output is not None:
        if len(files) != 1:
            raise InputError(f"-o takes one input image, got {len(files)}; use --out-dir")
        check_output_dir(output.parent)
        targets = [output]
    else:
        check_output_dir(out_dir)
        targets = [out_dir / f"{f.stem}.png" for f in files]
        if len(set(targets)) != len(targets):
            raise InputError("two inputs share a file name; upscale them into separate folders")
    for src, dst in zip(files, targets):
        check_output_path(dst, overwrite)
        if dst.resolve() == src.resolve():
            raise InputError(f"{dst}: output would replace its input")
    return targets


def cmd_upscale(args: argparse.Namespace) -> int:
    files = collect_inputs(args.inputs)
    targets = plan_outputs(files, args.output, args.out_dir, args.overwrite)
    target_of = dict(zip(files, targets))

    # Read and size-check every input before loading the model, so bad input fails fast.
    def check_size(f: Path, img: Image.Image) -> None:
        try:
            output_size(img.size, args.scale, args.size, args.max_pixels)
        except InputError as exc:
            raise InputError(f"{f}: {exc}") from None
        for text in output_notes(img, target_of[f]):
            note(f"{f}: {text}")

    images = read_inputs(files, check_size, rgb=False)
    out_dir = args.out_dir if args.out_dir is not None else targets[0].parent
    created = make_output_dir(out_dir)
    written = 0
    try:
        model = load_model(args.model, device=args.device, precision=args.precision, engine=args.engine)
        for img, src, dst in tqdm(list(zip(images, files, targets)), desc="upscale", unit="img",
                                  disable=len(images) < 2, file=sys.stderr):
            try:
                out = model.upscale(img, scale=args.scale, size=args.size, chunk_size=args.chunk_size,
                                    max_pixels=args.max_pixels)
                write_image(out, dst, overwrite=args.overwrite)
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


def known_problem(exc: BaseException) -> str | None:
    """A one-line message for an exception that is the user's or the machine's problem, not a bug."""
    if isinstance(exc, (InputError, ModelError)):
        return str(exc)
    text = str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            s in text.lower() for s in ("out of memory", "can't allocate memory", "not enough memory"))):
        return ("out of memory; ask for a smaller output, lower --chunk-size, or use --device cpu "
                f"({one_line(exc)[:120]})")
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import DEFAULT_MODEL, list_models, resolve

    if args.info:
        print(json.dumps(resolve(args.info).check().info(), indent=2))
        return 0
    rows = list_models(include_presets=args.all)
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        mark = "*" if name == DEFAULT_MODEL else " "
        state = "trained" if row["trained"] else "untrained preset"
        print(f"{mark} {name:<{width}}  {row['arch']:<8}  {state:<16}  {row['description']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    for path in run_demo(args.out_dir, model=load_model(args.model, device=args.device)):
        print(path)
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from .faces.cli import cmd_align as run

    return run(args)


def cmd_restore(args: argparse.Namespace) -> int:
    from .faces.cli import cmd_restore as run

    return run(args)


def cmd_train(args: argparse.Namespace) -> int:
    from .training.run import retrain_command, train

    path = train(args.config, out=args.out, resume=args.resume, data_root=args.data_root,
                 overrides=args.overrides, devices=args.devices, accelerator=args.accelerator,
                 precision=args.precision, num_workers=args.num_workers, command=retrain_command(args),
                 init=args.init)
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx_engine import export_onnx

    refuse_existing(args.onnx, args.overwrite)
    if not args.onnx.parent.is_dir():
        raise InputError(f"{args.onnx.parent}: no such folder")
    model = load_model(args.model, precision="fp32").model
    atomic_write(args.onnx, lambda tmp: export_onnx(model, tmp))  # never a half-written model
    print(args.onnx)
    return 0
