"""``arasfsr align`` and ``arasfsr restore``: faces in whole photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import defaults
from ..errors import InputError
from .common import (add_amount_options, add_folder_options, add_output_options, add_overwrite_option,
                     add_rendering_options, load_renderer, output_size_check, parse_count, plan_folder_run)
from .uncertainty import add_uncertainty_option

if TYPE_CHECKING:
    from PIL import Image


def register(sub: argparse._SubParsersAction) -> None:
    al = sub.add_parser("align", help="detect faces in photos and write aligned crops + a JSON of transforms")
    al.add_argument("inputs", nargs="+", metavar="INPUT", help="photos or folders of photos")
    al.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="folder for crops and faces.json")
    al.add_argument("--size", type=parse_count, default=200, metavar="N", help="crop side in pixels (default 200, as UTKFace)")
    add_overwrite_option(al)
    add_folder_options(al)
    al.set_defaults(func=run_align)

    rs = sub.add_parser("restore", help="up-scale whole photos, super-resolving each face aligned")
    rs.add_argument("inputs", nargs="+", metavar="PHOTO", help="photos or folders of photos")
    add_output_options(rs, file_help="output file (one photo)", dir_help="output folder (any number of photos)")
    add_amount_options(rs, size_example="1920x1080")
    add_rendering_options(rs, model_help="face model", default_model=defaults.DEFAULT_FACE_MODEL)
    rs.add_argument("--background", default="bicubic", metavar="NAME|PATH",
                    help="model for the rest of the photo (default bicubic)")
    rs.add_argument("--faces-only", action="store_true", help="write the super-resolved face crops alone (--out-dir)")
    rs.add_argument("--side-by-side", action="store_true",
                    help="also write NAME_compare.png: input, bicubic up-scale, restored")
    rs.add_argument("--json", action="store_true", help="also write NAME.json: faces, landmarks, transforms")
    add_uncertainty_option(rs, " for the faces (grey elsewhere: not estimated); with --faces-only one per crop")
    add_folder_options(rs)
    rs.set_defaults(func=run_restore)


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
    from ..imageio import probe_image, refuse_existing, write_image

    if not 8 <= args.size <= 4096:
        raise InputError(f"--size {args.size}: give a crop side between 8 and 4096 pixels")
    index = args.out_dir / "faces.json"
    refuse_existing(index, args.overwrite)
    # Crops are NAME_faceK.png; the number of faces is known only after detection.
    run, _ = plan_folder_run(args, "align", lambda dst: [_crop_path(dst, 0)])
    items = run.items
    run.check(lambda item: probe_image(item.src))  # every header before any work
    run.start(args.out_dir)
    records, crops = [], 0
    with run.running("photo"):  # from here on, a failure removes the folders made for the run
        detector = load_detector()
        for item in run.pending:
            with run.attempt([item]):
                img = run.read(item)
                arr = np.asarray(img)
                faces = detector.detect(arr)
                if not faces:
                    run.say(_no_face_note(item.src, img))
                rows = []
                for k, face in enumerate(faces):
                    m, crop = aligned_crop(arr, face.landmarks, args.size)
                    name = _crop_path(item.dst, k)
                    run.make_parent(name)
                    write_image(Image.fromarray(crop), name, overwrite=args.overwrite)
                    crops += 1
                    rows.append({**face.to_json(), "crop": str(name.relative_to(args.out_dir)),
                                 "input_to_crop": np.round(m, 6).tolist()})
                records.append({"input": str(item.src), "width": img.width, "height": img.height, "faces": rows})
                run.done(item)
            run.advance()
        if not crops and not run.counts()["failed"]:
            raise InputError("no face found in " + (str(items[0].src) if len(items) == 1 else
                                                    f"any of the {len(items)} inputs"))
        if crops:
            write_json({"size": args.size, "template": (TEMPLATE * args.size).round(3).tolist(),
                        "detector": "mtcnn", "images": records}, index)
    print(f"wrote {crops} face crop{'s' * (crops != 1)}" + (f" and {index}" if crops else ""))
    return run.list_failures()


def _crop_path(dst: Path, k: int) -> Path:
    return dst.with_name(f"{dst.stem}_face{k}.png")


def _compare_path(dst: Path) -> Path:
    return dst.with_name(f"{dst.stem}_compare.png")


def _refuse_old_crops(items: list) -> None:
    """Crops NAME_faceK.png of an earlier run: a photo with fewer faces would leave them mixed in."""
    import re

    for item in items:
        crop = re.compile(re.escape(item.dst.stem) + r"_face\d+(_uncertainty)?\.png")  # a crop, or its map
        old = sorted(p for p in item.dst.parent.glob(f"{item.dst.stem}_face*.png") if crop.fullmatch(p.name))
        if old:
            raise InputError(f"{old[0]}: exists; pass --overwrite to replace it")


def run_restore(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..faces.detect import load_detector
    from ..faces.restore import restore, side_by_side_picture
    from ..imageio import probe_image, refuse_existing, write_image
    from ..uncertainty import uncertainty_paths, write_uncertainty

    if args.faces_only and args.out_dir is None:
        raise InputError("--faces-only writes one crop per face: give --out-dir instead of -o")

    def outputs(dst: Path) -> list[Path]:
        """What an input writes, the one written last first: it marks the input as done."""
        first = _crop_path(dst, 0) if args.faces_only else dst
        return ([first] + [_compare_path(dst)] * (args.side_by_side and not args.faces_only)
                + [dst.with_suffix(".json")] * args.json
                + list(uncertainty_paths(dst)) * (args.uncertainty and not args.faces_only))

    run, out_dir = plan_folder_run(args, "restore", outputs)
    if args.faces_only and not (args.overwrite or args.skip_existing):
        _refuse_old_crops(run.items)
    check_size = output_size_check(args)
    run.check(lambda item: check_size(item.src, probe_image(item.src)[0]))  # sizes, before any work
    if not run.pending:
        return run.finish(out_dir, "photos")
    run.start(out_dir)
    # An unfinished input's other outputs (its first is missing) are a killed run's: replaced.
    replace = args.overwrite or args.skip_existing
    with run.running("photo"):  # from here on, a failure removes the folders made for the run
        detector = load_detector()
        model = load_renderer(args)
        background = None if args.background == "bicubic" else load_renderer(args, args.background)
        for item in run.pending:
            with run.attempt([item]):
                img = run.read(item)
                res = restore(img, model, scale=args.scale, size=args.size, detector=detector,
                              background=background, faces_only=args.faces_only, max_pixels=args.max_pixels,
                              uncertainty=args.uncertainty)
                if not res.faces:
                    run.say(_no_face_note(item.src, img) + ("; nothing written" if args.faces_only else
                                                           "; the photo is up-scaled without face restoration"))
                run.make_parent(item.dst)
                if args.json:
                    write_json({"input": str(item.src), "output_size": list(res.size), "model": model.name,
                                "faces": [rf.to_json() for rf in res.faces]}, item.dst.with_suffix(".json"))
                if args.faces_only:
                    for k in reversed(range(len(res.faces))):  # face 0 last: it marks the photo done
                        name = _crop_path(item.dst, k)
                        marks_done = args.overwrite if k == 0 else replace  # never replaced unasked
                        refuse_existing(name, marks_done)
                        if args.uncertainty:
                            write_uncertainty(res.faces[k].uncertainty, name, replace)
                        write_image(Image.fromarray(res.faces[k].crop), name, overwrite=marks_done)
                else:
                    if args.side_by_side:
                        write_image(side_by_side_picture(img, res), _compare_path(item.dst), overwrite=replace)
                    if args.uncertainty:
                        write_uncertainty(res.uncertainty, item.dst, replace, res.coverage, res.image)
                    write_image(res.image, item.dst, overwrite=args.overwrite)
                run.done(item)
                what = "face crops" if args.faces_only else str(item.dst)
                run.tell(f"{item.src}: {len(res.faces)} face{'s' * (len(res.faces) != 1)} restored -> {what}")
            run.advance()
    return run.finish(out_dir, "photos", extra=lambda item: [] if args.faces_only else outputs(item.dst)[1:])
