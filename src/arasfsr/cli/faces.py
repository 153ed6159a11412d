"""``arasfsr align`` and ``arasfsr restore``: faces in whole photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .common import (add_amount_options, add_output_options, add_overwrite_option, add_rendering_options,
                     collect_inputs, load_renderer, note, output_size_check, parse_count, plan_outputs,
                     read_inputs)
from .uncertainty import add_uncertainty_option

if TYPE_CHECKING:
    from PIL import Image


def register(sub: argparse._SubParsersAction) -> None:
    al = sub.add_parser("align", help="detect faces in photos and write aligned crops + a JSON of transforms")
    al.add_argument("inputs", nargs="+", metavar="INPUT", help="photos or folders of photos")
    al.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="folder for crops and faces.json")
    al.add_argument("--size", type=parse_count, default=200, metavar="N", help="crop side in pixels (default 200, as UTKFace)")
    add_overwrite_option(al)
    al.set_defaults(func=run_align)

    rs = sub.add_parser("restore", help="up-scale whole photos, super-resolving each face aligned")
    rs.add_argument("inputs", nargs="+", metavar="PHOTO", help="photos or folders of photos")
    add_output_options(rs, file_help="output file (one photo)", dir_help="output folder (any number of photos)")
    add_amount_options(rs, size_example="1920x1080")
    add_rendering_options(rs, model_help="face model")
    rs.add_argument("--background", default="bicubic", metavar="NAME|PATH",
                    help="model for the rest of the photo (default bicubic)")
    rs.add_argument("--faces-only", action="store_true", help="write the super-resolved face crops alone (--out-dir)")
    rs.add_argument("--side-by-side", action="store_true",
                    help="also write NAME_compare.png: input, bicubic up-scale, restored")
    rs.add_argument("--json", action="store_true", help="also write NAME.json: faces, landmarks, transforms")
    add_uncertainty_option(rs, " for the faces (grey elsewhere: not estimated); with --faces-only one per crop")
    rs.set_defaults(func=run_restore)


def _check_new(paths: list[Path], overwrite: bool) -> None:
    from ..imageio import refuse_existing

    if len(set(paths)) != len(paths):
        raise InputError("two inputs share a file name; put them in separate folders")
    for p in paths:
        refuse_existing(p, overwrite)


def plan_restore(files: list[Path], targets: list[Path], args: argparse.Namespace) -> None:
    """Refuse, before any work, every output restore would write that cannot be: two outputs
    on one file (with or without --overwrite), an output that is an input, one that exists
    (without --overwrite), face crops of an earlier run (without --overwrite)."""
    import re

    from ..imageio import refuse_existing
    from ..uncertainty import uncertainty_paths

    planned: dict[Path, str] = {}
    for src, dst in zip(files, targets):
        outputs = []
        if not args.faces_only:
            outputs.append((dst, "restored photo"))
            if args.side_by_side:
                outputs.append((dst.with_name(f"{dst.stem}_compare.png"), "side-by-side picture"))
            if args.uncertainty:
                outputs += [(p, "uncertainty map") for p in uncertainty_paths(dst)]
        if args.json:
            outputs.append((dst.with_suffix(".json"), "JSON"))
        for path, what in outputs:
            key = path.resolve()
            if key in planned:
                raise InputError(f"{path}: two outputs would be written to this file ({planned[key]} and "
                                 f"{src.name}'s {what}); rename an input or write them to separate folders")
            planned[key] = f"{src.name}'s {what}"
            refuse_existing(path, args.overwrite)
    for src in files:
        if src.resolve() in planned:
            raise InputError(f"{src}: an output ({planned[src.resolve()]}) would replace this input")
    if args.faces_only and not args.overwrite:
        for dst in targets:
            crop = re.compile(re.escape(dst.stem) + (r"_face\d+(_uncertainty\.(png|npy)|\.png)" if args.uncertainty
                                                     else r"_face\d+\.png"))
            old = sorted(p for p in dst.parent.glob(f"{dst.stem}_face*.png") if crop.fullmatch(p.name))
            if old:
                raise InputError(f"{old[0]}: exists; pass --overwrite to replace it")


def write_json(data: dict, path: Path) -> None:
    """Atomic, like write_image: temporary file then rename."""
    from ..atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1))


def _no_face_note(path: Path, img: Image.Image) -> str:
    from ..faces.detect import MIN_FACE

    if min(img.size) < MIN_FACE:
        return f"{path}: {img.width}x{img.height} pixels is too small to hold a face"
    return f"{path}: no face found"


def run_align(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..faces.align import TEMPLATE, aligned_crop
    from ..faces.detect import load_detector
    from ..imageio import make_folder, write_image

    if not 8 <= args.size <= 4096:
        raise InputError(f"--size {args.size}: give a crop side between 8 and 4096 pixels")
    files = collect_inputs(args.inputs)
    images = read_inputs(files)
    detector = load_detector()
    found = [detector.detect(np.asarray(img)) for img in images]
    if not any(found):
        raise InputError("no face found in " + (str(files[0]) if len(files) == 1 else f"any of the {len(files)} inputs"))
    crops = [[args.out_dir / f"{f.stem}_face{k}.png" for k in range(len(faces))] for f, faces in zip(files, found)]
    index = args.out_dir / "faces.json"
    _check_new([p for c in crops for p in c] + [index], args.overwrite)
    make_folder(args.out_dir)
    records = []
    for f, img, faces, names in zip(files, images, found, crops):
        if not faces:
            note(_no_face_note(f, img))
        arr = np.asarray(img)
        rows = []
        for face, name in zip(faces, names):
            m, crop = aligned_crop(arr, face.landmarks, args.size)
            write_image(Image.fromarray(crop), name, overwrite=args.overwrite)
            rows.append({**face.to_json(), "crop": name.name, "input_to_crop": np.round(m, 6).tolist()})
        records.append({"input": str(f), "width": img.width, "height": img.height, "faces": rows})
    write_json({"size": args.size, "template": (TEMPLATE * args.size).round(3).tolist(),
                "detector": "mtcnn", "images": records}, index)
    n = sum(len(r["faces"]) for r in records)
    print(f"wrote {n} face crop{'s' * (n != 1)} and {index}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from ..imageio import make_output_dir, remove_empty_dirs

    files = collect_inputs(args.inputs)
    if args.faces_only and args.out_dir is None:
        raise InputError("--faces-only writes one crop per face: give --out-dir instead of -o")
    targets = plan_outputs(files, args.output, args.out_dir, args.overwrite)
    plan_restore(files, targets, args)
    images = read_inputs(files, output_size_check(args))  # sizes are checked before any work
    # Created and probed before any work, like upscale's; removed again if it stays empty.
    created = make_output_dir(args.out_dir if args.out_dir is not None else targets[0].parent)
    try:
        _restore_all(args, files, images, targets)
    finally:
        remove_empty_dirs(created)
    return 0


def _restore_all(args: argparse.Namespace, files: list[Path], images: list[Image.Image], targets: list[Path]) -> None:
    from PIL import Image

    from ..faces.detect import load_detector
    from ..faces.restore import restore, side_by_side_picture
    from ..imageio import refuse_existing, write_image
    from ..uncertainty import write_uncertainty

    detector = load_detector()
    model = load_renderer(args)
    background = None if args.background == "bicubic" else load_renderer(args, args.background)
    for f, img, dst in zip(files, images, targets):
        res = restore(img, model, scale=args.scale, size=args.size, detector=detector, background=background,
                      faces_only=args.faces_only, max_pixels=args.max_pixels, chunk_size=args.chunk_size,
                      uncertainty=args.uncertainty)
        if not res.faces:
            note(_no_face_note(f, img) + ("; nothing written" if args.faces_only else
                                         "; the photo is up-scaled without face restoration"))
        if args.faces_only:
            for k, rf in enumerate(res.faces):
                name = dst.with_name(f"{dst.stem}_face{k}.png")
                refuse_existing(name, args.overwrite)
                write_image(Image.fromarray(rf.crop), name, overwrite=args.overwrite)
                if rf.uncertainty is not None:
                    write_uncertainty(rf.uncertainty, name, overwrite=args.overwrite)
        else:
            write_image(res.image, dst, overwrite=args.overwrite)
            if res.uncertainty is not None:
                write_uncertainty(res.uncertainty, dst, args.overwrite, res.coverage, res.image)
            if args.side_by_side:
                write_image(side_by_side_picture(img, res), dst.with_name(f"{dst.stem}_compare.png"),
                            overwrite=args.overwrite)
        if args.json:
            write_json({"input": str(f), "output_size": list(res.size), "model": model.name,
                        "faces": [rf.to_json() for rf in res.faces]}, dst.with_suffix(".json"))
        what = "face crops" if args.faces_only else str(dst)
        print(f"{f}: {len(res.faces)} face{'s' * (len(res.faces) != 1)} restored -> {what}")
