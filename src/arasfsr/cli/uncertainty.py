"""``--uncertainty`` of ``upscale`` and ``restore``, and ``arasfsr eval-uncertainty``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .common import add_device_option, add_overwrite_option, add_precision_option, parse_count

OPTION_HELP = ("also write NAME_uncertainty.png (the expected error per pixel as a heat map with a colour "
               "bar, fixed scale 0-24 grey levels) and NAME_uncertainty.npy (the values, float32, grey levels)")


def add_uncertainty_option(parser: argparse.ArgumentParser, what: str = "") -> None:
    parser.add_argument("--uncertainty", action="store_true", help=OPTION_HELP + what)


def outputs_with_maps(uncertainty: bool) -> Callable[[Path], list[Path]]:
    """What an upscale input writes (``plan_items``'s ``outputs``): NAME first (written
    last: it marks the input done), then its map files when asked for."""
    from ..uncertainty import uncertainty_paths

    return lambda dst: [dst, *uncertainty_paths(dst)] if uncertainty else [dst]


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval-uncertainty",
                        help="score the uncertainty map against the actual error (and a gradient baseline)")
    ev.add_argument("--model", default=None, metavar="NAME|PATH", help="model (default: the default model)")
    ev.add_argument("--rows", nargs="+", default=["16-128", "32-128"], metavar="LR-HR[:DEG]",
                    help="test rows, e.g. 16-128 32-128:nn-jpeg (default 16-128 32-128)")
    ev.add_argument("--dataset", default="utkface/test", help="a folder under the data root (default utkface/test)")
    ev.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and the plot")
    ev.add_argument("--limit", type=parse_count, default=None, metavar="N",
                    help="only N faces, evenly spaced in name order (default: all)")
    ev.add_argument("--data", type=Path, default=None,
                    help="folder holding utkface/ (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    add_device_option(ev)
    add_precision_option(ev)
    add_overwrite_option(ev, "replace results in --out")
    ev.set_defaults(func=run_eval_uncertainty)


def run_eval_uncertainty(args: argparse.Namespace) -> int:
    from .. import defaults
    from ..evaluation.uncertainty import UncertaintyEvalConfig, run_uncertainty_eval

    cfg = UncertaintyEvalConfig(out=args.out, model=args.model or defaults.DEFAULT_MODEL, rows=tuple(args.rows),
                                dataset=args.dataset, data_root=args.data, limit=args.limit, device=args.device,
                                precision=args.precision, overwrite=args.overwrite)
    run_uncertainty_eval(cfg)
    print(args.out / "results.md")
    return 0
