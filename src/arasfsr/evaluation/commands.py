"""The ``arasfsr eval`` and ``arasfsr compare`` sub-commands (arguments and actions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.degrade import DEGRADATIONS
from ..protocols import PROTOCOLS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..cli import parse_count

    ev = sub.add_parser("eval", help="evaluate models on a test protocol (PSNR/SSIM tables, pictures)")
    ev.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                    help=", ".join(f"{p.name} {p.summary}" for p in PROTOCOLS.values()))
    ev.add_argument("--model", nargs="+", default=[], metavar="NAME|PATH",
                    help="models to evaluate (bicubic is always added); default: every trained model")
    ev.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, PNGs")
    ev.add_argument("--tier", default="custom", help="a label recorded in the results")
    ev.add_argument("--limit", type=int, default=None, help="only N faces of each set, evenly spaced in name order")
    ev.add_argument("--data", type=Path, default=None,
                    help="folder holding utkface/, ffhq/, realworld/ (default: $ARASFSR_DATA, else shared/data "
                         "beside the checkout, else ../shared/data)")
    ev.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ev.add_argument("--only", nargs="+", metavar="LR-HR",
                    help="evaluate only these rows, e.g. 16-128 (default: every row of the protocol)")
    ev.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                    help="implicit decoders' precision (default fp32: exact metrics)")
    ev.add_argument("--batch-size", type=int, default=16, help="faces per forward pass")
    ev.add_argument("--chunk-size", type=parse_count, default=None, help="queries per forward pass")
    ev.add_argument("--no-pictures", action="store_true", help="skip the plot and comparison grids")
    ev.add_argument("--overwrite", action="store_true", help="replace results in --out")

    cmp = sub.add_parser("compare", help="a visual comparison grid of models on some faces")
    cmp.add_argument("--model", nargs="+", default=[], metavar="NAME|PATH",
                     help="models to show (bicubic is always added)")
    cmp.add_argument("--faces", nargs="+", required=True, metavar="IMAGE", help="face images or folders")
    cmp.add_argument("--out", type=Path, required=True, help="the grid, e.g. grid.png")
    cmp.add_argument("--lr", type=int, default=32, help="LR side in pixels (default 32)")
    cmp.add_argument("--hr", type=int, default=128, help="output side in pixels (default 128)")
    cmp.add_argument("--degradation", default="bicubic", choices=list(DEGRADATIONS))
    cmp.add_argument("--ffhq-framing", action="store_true",
                     help="crop FFHQ-aligned faces to the UTKFace framing first")
    cmp.add_argument("--no-ground-truth", action="store_true",
                     help="the faces are real low-quality photos: show them as reference, no PSNR")
    cmp.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    cmp.add_argument("--overwrite", action="store_true")


def default_models() -> list[str]:
    from ..registry import list_models

    return [name for name, row in list_models().items() if row["trained"]]


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import EvalConfig, run_eval

    cfg = EvalConfig(protocol=args.protocol, out=args.out, models=args.model or default_models(),
                     data_root=args.data, tier=args.tier, limit=args.limit, device=args.device,
                     precision=args.precision, only=args.only,
                     batch_size=args.batch_size, chunk_size=args.chunk_size,
                     pictures=not args.no_pictures, overwrite=args.overwrite)
    results = run_eval(cfg)
    if results is not None:
        print(args.out / "results.md")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..commands import collect_inputs
    from ..errors import InputError
    from ..imageio import refuse_existing
    from .plots import compare
    from .runner import load_models

    if args.lr < 1 or args.hr < 1:
        raise InputError("--lr and --hr must be at least 1")
    refuse_existing(args.out, args.overwrite)
    files = collect_inputs(args.faces)
    models = load_models(args.model, args.device)
    print(compare(models, files, args.out, args.lr, args.hr, args.degradation, args.ffhq_framing,
                  not args.no_ground_truth, args.overwrite))
    return 0
