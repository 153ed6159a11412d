"""What each CLI sub-command does, on top of the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .api import load_model
from .errors import InputError
from .imageio import IMAGE_SUFFIXES, read_image, write_image


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files named directly, and the images inside named folders (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{path}: folder holds no images")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def plan_outputs(files: list[Path], output: Path | None, out_dir: Path | None, overwrite: bool) -> list[Path]:
    if output is not None:
        if len(files) != 1:
            raise InputError(f"-o takes one input image, got {len(files)}; use --out-dir")
        targets = [output]
    else:
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"{out_dir}: exists and is not a folder")
        targets = [out_dir / f"{f.stem}.png" for f in files]
        if len(set(targets)) != len(targets):
            raise InputError("two inputs share a file name; upscale them into separate folders")
    for src, dst in zip(files, targets):
        if dst.resolve() == src.resolve():
            raise InputError(f"{dst}: output would replace its input")
        if dst.exists() and not overwrite:
            raise InputError(f"{dst}: exists; pass --overwrite to replace it")
    return targets


def cmd_upscale(args: argparse.Namespace) -> int:
    files = collect_inputs(args.inputs)
    targets = plan_outputs(files, args.output, args.out_dir, args.overwrite)
    # Read every input before loading the model, so bad input fails fast.
    images = []
    for f in files:
        img, notes = read_image(f)
        for note in notes:
            print(f"arasfsr: {f}: {note}", file=sys.stderr)
        images.append(img)
    if args.out_dir is not None:
        try:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{args.out_dir}: cannot create output folder ({exc.strerror})") from None
    from .api import output_size

    for img in images:  # check sizes before any work
        output_size(img.size, args.scale, args.size, args.max_pixels)
    model = load_model(args.model, device=args.device, precision=getattr(args, "precision", "auto"),
                       engine=getattr(args, "engine", "torch"))
    for img, dst in tqdm(list(zip(images, targets)), desc="upscale", unit="img",
                         disable=len(images) < 2, file=sys.stderr):
        out = model.upscale(img, scale=args.scale, size=args.size, chunk_size=args.chunk_size,
                            max_pixels=args.max_pixels)
        write_image(out, dst, overwrite=args.overwrite)
    if len(images) == 1:
        print(targets[0])
    else:
        print(f"wrote {len(images)} images to {args.out_dir}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .checkpoint import read_card
    from .registry import DEFAULT_MODEL, list_models, shipped_weights

    rows = list_models()
    if args.info:
        if args.info not in rows:
            raise InputError(f"unknown model {args.info!r}; `arasfsr models` lists the names")
        weights = shipped_weights(args.info)
        card = read_card(weights) if weights else {}
        print(json.dumps({"name": args.info, **rows[args.info], **card}, indent=2))
        return 0
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        mark = "*" if name == DEFAULT_MODEL else " "
        state = "trained" if row["trained"] else "untrained preset"
        print(f"{mark} {name:<{width}}  {row['arch']:<8}  {state:<16}  {row['description']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    for path in run_demo(args.out_dir, model=args.model, device=args.device):
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx_engine import export_onnx

    if args.onnx.exists() and not args.overwrite:
        raise InputError(f"{args.onnx}: exists; pass --overwrite to replace it")
    if not args.onnx.parent.is_dir():
        raise InputError(f"{args.onnx.parent}: no such folder")
    model = load_model(args.model, precision="fp32").model
    tmp = args.onnx.with_name(args.onnx.name + ".part")
    try:
        export_onnx(model, tmp)
        tmp.replace(args.onnx)  # never a half-written model
    finally:
        tmp.unlink(missing_ok=True)
    print(args.onnx)
    return 0
