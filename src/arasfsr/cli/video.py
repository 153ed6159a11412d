"""``arasfsr video``: a video up-scaled, its faces super-resolved and followed through time."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import defaults
from ..entry import EXIT_INTERRUPTED
from .common import (add_amount_options, add_overwrite_option, add_rendering_options,
                     load_renderer, note, parse_count, parse_count_or_zero)

CONTAINER_LIST = ".mp4, .mkv, .mov or .webm"


def register(sub: argparse._SubParsersAction) -> None:
    vd = sub.add_parser("video", help="up-scale a video, super-resolving its faces followed from frame to "
                                      "frame; the sound and timestamps are kept (pip install 'arasfsr[video]')")
    vd.add_argument("input", metavar="VIDEO", help="the video (any format FFmpeg reads)")
    vd.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                    help=f"output video, {CONTAINER_LIST} (H.264, or VP9 in .webm)")
    add_overwrite_option(vd, "replace the output if it exists")
    add_amount_options(vd, size_example="1280x960 (even numbers; as displayed, rotation applied)")
    add_rendering_options(vd, model_help="face model", default_model=defaults.DEFAULT_FACE_MODEL)
    vd.add_argument("--background", default="bicubic", metavar="NAME|PATH",
                    help="model for the rest of each frame (default bicubic)")
    vd.add_argument("--detect-every", type=parse_count, default=None, metavar="N",
                    help="look for faces every N frames and follow them in between (default 1)")
    vd.add_argument("--crf", type=parse_count_or_zero, default=None, metavar="Q",
                    help="the encoder's constant quality, lower is better (default 18 for H.264, 30 for VP9)")
    vd.set_defaults(func=run_video)


def run_video(args: argparse.Namespace) -> int:
    from ..atomic import Terminated
    from ..errors import InputError
    from ..faces.detect import load_detector
    from ..faces.video import DEFAULT_DETECT_EVERY, restore_video, video_output_size
    from ..videoio import check_video_output, probe_video, require_av

    require_av()
    src, dst = Path(args.input), args.output
    check_video_output(dst, src, args.overwrite)
    info = probe_video(src)
    video_output_size(info, args.scale, args.size, args.max_pixels)  # refused before any model loads
    if args.crf is not None and args.crf > 63:
        raise InputError(f"--crf {args.crf}: give a quality between 0 and 63")
    detector = load_detector()
    model = load_renderer(args)
    background = None if args.background == "bicubic" else load_renderer(args, args.background)
    try:
        res = restore_video(src, dst, model, scale=args.scale, size=args.size, detector=detector,
                            background=background, detect_every=args.detect_every or DEFAULT_DETECT_EVERY,
                            max_pixels=args.max_pixels, chunk_size=args.chunk_size, crf=args.crf,
                            overwrite=args.overwrite, note=note)
    except (KeyboardInterrupt, Terminated) as exc:
        note(f"interrupted; {dst} was not written (no partial file is left)")
        if isinstance(exc, Terminated):
            raise
        return EXIT_INTERRUPTED
    kept = ", ".join(res.copied) or "no other streams"
    if not res.faces:
        note(f"{src}: no face found in any frame; the video is up-scaled without face restoration")
    note(f"{res.frames} frames, {res.size[0]}x{res.size[1]}, {res.faces} face{'s' * (res.faces != 1)} followed, "
         f"{res.fps:.3g} frames/s; copied: {kept}")
    print(res.path)
    return 0
