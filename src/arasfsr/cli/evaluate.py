"""``arasfsr eval`` and ``arasfsr compare``: models against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .common import (add_chunk_size_option, add_device_option, add_overwrite_option, add_precision_option,
                     collect_inputs, defer_help, library_choice, parse_count)

MAX_SIDE = 4096  # of a face in the comparison grid, as align's crops

# Checked, and listed in a help, only when used: their modules load numpy and Pillow, which
# building the parser needs no more than torch (importing them made `eval --help` 3x slower).
protocol_name = library_choice("arasfsr.protocols", "PROTOCOLS")
degradation_name = library_choice("arasfsr.data.degrade", "DEGRADATIONS")


def protocols_help() -> str:
    from ..protocols import PROTOCOLS

    return ", ".join(f"{p.name} {p.summary}" for p in PROTOCOLS.values())


def degradations_help() -> str:
    from ..data.degrade import DEGRADATIONS

    return f"how the LR faces are made: {', '.join(DEGRADATIONS)} (default bicubic)"


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate models on a test protocol (PSNR/SSIM tables, pictures)")
    defer_help(ev.add_argument("--protocol", required=True, type=protocol_name, metavar="NAME"), protocols_help)
    ev.add_argument("--model", nargs="+", default=[], metavar="NAME|PATH",
                    help="models to evaluate (bicubic is always added); default: every trained model")
    ev.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, PNGs")
    ev.add_argument("--tier", default="custom", help="a label recorded in the results")
    ev.add_argument("--limit", type=parse_count, default=None, metavar="N",
                    help="only N faces of each set, evenly spaced in name order")
    ev.add_argument("--data", type=Path, default=None,
                    help="folder holding utkface/, ffhq/, realworld/ (default: $ARASFSR_DATA, else shared/data "
                         "beside the checkout, else ../shared/data)")
    ev.add_argument("--split", choices=("test", "val"), default="test",
                    help="val: score the val faces instead (model selection; sets without val faces are left out)")
    add_device_option(ev)
    ev.add_argument("--only", nargs="+", metavar="LR-HR",
                    help="evaluate only these rows, e.g. 16-128 (default: every row of the protocol)")
    add_precision_option(ev, default="fp32")
    ev.add_argument("--batch-size", type=parse_count, default=16, metavar="N", help="faces per forward pass")
    add_chunk_size_option(ev)
    ev.add_argument("--no-pictures", action="store_true", help="skip the plot and comparison grids")
    add_overwrite_option(ev, "replace results in --out")
    ev.set_defaults(func=run_eval)

    cmp = sub.add_parser("compare", help="a visual comparison grid of models on some faces")
    cmp.add_argument("--model", nargs="+", default=[], metavar="NAME|PATH",
                     help="models to show (bicubic is always added)")
    cmp.add_argument("--faces", nargs="+", required=True, metavar="IMAGE", help="face images or folders")
    cmp.add_argument("--out", type=Path, required=True, help="the grid, e.g. grid.png")
    cmp.add_argument("--lr", type=parse_count, default=32, metavar="N", help="LR side in pixels (default 32)")
    cmp.add_argument("--hr", type=parse_count, default=128, metavar="N", help="output side in pixels (default 128)")
    defer_help(cmp.add_argument("--degradation", default="bicubic", type=degradation_name, metavar="KIND"),
               degradations_help)
    cmp.add_argument("--ffhq-framing", action="store_true",
                     help="crop FFHQ-aligned faces to the UTKFace framing first")
    cmp.add_argument("--no-ground-truth", action="store_true",
                     help="the faces are real low-quality photos: show them as reference, no PSNR")
    add_device_option(cmp)
    add_precision_option(cmp, default="fp32")
    add_chunk_size_option(cmp)
    add_overwrite_option(cmp, "replace the grid if it exists")
    cmp.set_defaults(func=run_compare)


def default_models() -> list[str]:
    from ..registry import list_models

    return [name for name, row in list_models().items() if row["trained"]]


def run_eval(args: argparse.Namespace) -> int:
    from ..evaluation.runner import EvalConfig, run_eval as evaluate

    cfg = EvalConfig(protocol=args.protocol, out=args.out, models=args.model or default_models(),
                     data_root=args.data, tier=args.tier, limit=args.limit, device=args.device,
                     precision=args.precision, only=args.only, split=args.split,
                     batch_size=args.batch_size, chunk_size=args.chunk_size,
                     pictures=not args.no_pictures, overwrite=args.overwrite)
    results = evaluate(cfg)
    if results is not None:
        print(args.out / "results.md")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ..evaluation.plots import compare
    from ..evaluation.runner import load_models
    from ..imageio import refuse_existing

    for flag, side in (("--lr", args.lr), ("--hr", args.hr)):
        if side > MAX_SIDE:
            raise InputError(f"{flag} {side}: give a side of at most {MAX_SIDE} pixels")
    refuse_existing(args.out, args.overwrite)
    files = collect_inputs(args.faces)
    models = load_models(args.model, args.device, args.precision)
    print(compare(models, files, args.out, args.lr, args.hr, args.degradation, args.ffhq_framing,
                  not args.no_ground_truth, args.overwrite, chunk_size=args.chunk_size))
    return 0
