"""What the sub-commands share: value parsers, option groups, input collection, output
planning and messages.

Nothing heavy is imported at module level (no torch, numpy or Pillow): building the parser
for ``--help`` and usage errors must stay instant. The library is imported where it is used.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .. import defaults
from ..entry import parse_count, whole_number
from ..errors import InputError
from ..folders import EXIT_PARTIAL

if TYPE_CHECKING:
    from ..api import Upscaler
    from ..folders import FolderRun


def parse_count_or_zero(text: str) -> int:
    return parse_count(text, minimum=0)


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` such as ``173x131``."""
    parts = re.split(r"[x,]", text.lower())
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use WxH, e.g. 173x131")
    values = [whole_number(p) for p in parts]
    if None in values:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: width and height must be whole numbers")
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: width and height must be at least 1")
    return values[0], values[1]


def parse_scale(text: str) -> float | tuple[float, float]:
    """``4``, ``3.5`` or ``SXxSY`` such as ``2x3`` (width x2, height x3), width first as in WxH."""
    parts = re.split(r"[x,]", text.lower())
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid scale {text!r}: use S or SXxSY, e.g. 4 or 2x3") from None
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"invalid scale {text!r}: use S or SXxSY, e.g. 4 or 2x3")
    if not all(v > 0 and v == v and v != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"invalid scale {text!r}: factors must be positive numbers")
    return values[0] if len(values) == 1 else (values[0], values[1])


def library_choice(module: str, name: str) -> Callable[[str], str]:
    """A parser for a value that must be one of ``module.name``, read from the library only
    when a value is checked (argparse reads ``choices`` as it builds the parser)."""

    def parse(text: str) -> str:
        values = getattr(importlib.import_module(module), name)
        if text not in values:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(map(repr, values))})")
        return text

    return parse


class _Deferred:
    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def defer_help(action: argparse.Action, make: Callable[[], str]) -> None:
    """``action``'s help made by ``make`` only when a help is shown, not as the parser is built
    (argparse fills ``%(NAME)s`` in a help from the option's attributes)."""
    action.deferred_help = _Deferred(make)
    action.help = "%(deferred_help)s"


# --- option groups --------------------------------------------------------------------


def add_overwrite_option(parser: argparse.ArgumentParser, help: str = "replace outputs that exist") -> None:
    parser.add_argument("--overwrite", action="store_true", help=help)


def add_output_options(parser: argparse.ArgumentParser, file_help: str, dir_help: str) -> None:
    """``-o OUT`` (one input) or ``--out-dir DIR``, and ``--overwrite`` or ``--skip-existing``."""
    dest = parser.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output", type=Path, metavar="OUT", help=file_help)
    dest.add_argument("--out-dir", type=Path, metavar="DIR", help=dir_help)
    existing = parser.add_mutually_exclusive_group()
    add_overwrite_option(existing)
    existing.add_argument("--skip-existing", action="store_true",
                          help="leave the inputs whose output exists (finish a run that was stopped)")


def add_folder_options(parser: argparse.ArgumentParser) -> None:
    """How a run over many inputs walks folders and lives with bad files."""
    parser.add_argument("--recursive", action="store_true",
                        help="also take the images in sub-folders, keeping their relative paths under --out-dir")
    parser.add_argument("--continue-on-error", action="store_true",
                        help=f"go on past inputs that fail, list them, and exit with status {EXIT_PARTIAL}")
    parser.add_argument("--report", type=Path, metavar="FILE.json",
                        help="write each input's status (ok, failed, skipped), message and output path here")


def add_amount_options(parser: argparse.ArgumentParser, size_example: str = "173x131") -> None:
    """``--scale S|SXxSY`` or ``--size WxH``, one of them required."""
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--scale", type=parse_scale, metavar="S|SXxSY",
                        help="factor S, or SX (width) x SY (height), e.g. 4, 3.5, 2x3")
    amount.add_argument("--size", type=parse_size, metavar="WxH", help=f"exact output size, e.g. {size_example}")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])


def add_precision_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    what = "auto = bf16 where the hardware has it" if default == "auto" else "fp32 gives exact metrics"
    parser.add_argument("--precision", default=default, choices=["auto", "fp32", "bf16"],
                        help=f"implicit decoder precision; {what} (default {default})")


def add_chunk_size_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-size", type=parse_count, default=None, metavar="N",
                        help="pixels queried per forward pass (default: automatic, from free memory)")


def add_rendering_options(parser: argparse.ArgumentParser, model_help: str = "model",
                          pixel_limit: bool = True, default_model: str = defaults.DEFAULT_MODEL) -> None:
    """The options of every command that renders with one model: --model, --device,
    --precision, --engine, --chunk-size and (unless the outputs are fixed) --max-pixels."""
    parser.add_argument("--model", default=default_model, metavar="NAME|PATH",
                        help=f"{model_help}: a name (`arasfsr models`) or a .safetensors path "
                             f"(default {default_model})")
    add_device_option(parser)
    add_precision_option(parser)
    parser.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                        help="onnx: run with onnxruntime (--model may be an .onnx file; needs arasfsr[onnx])")
    add_chunk_size_option(parser)
    if pixel_limit:
        parser.add_argument("--max-pixels", type=parse_count, default=defaults.DEFAULT_MAX_PIXELS, metavar="N",
                            help=f"refuse outputs with more pixels than N (default {defaults.DEFAULT_MAX_PIXELS:,})")
        parser.add_argument("--force-model", action="store_true",
                            help="run the model on inputs larger than it adds detail to (by default those are "
                                 "resized by bicubic, with a note: the same picture, many times faster)")


def load_renderer(args: argparse.Namespace, name: str | None = None) -> Upscaler:
    """The model ``name`` (default ``--model``) loaded with the rendering options, which the
    library checks once (:class:`arasfsr.runtime.RenderSettings`)."""
    from ..api import load_model

    settings = {"chunk_size": args.chunk_size, "force_model": getattr(args, "force_model", False)}
    if hasattr(args, "max_pixels"):
        settings["max_pixels"] = args.max_pixels
    if getattr(args, "sample_z", False):
        settings.update(sample_z=True, seed=args.seed)
    return load_model(args.model if name is None else name, device=args.device, precision=args.precision,
                      engine=args.engine, **settings)


# --- inputs and outputs ---------------------------------------------------------------


def note(message: str) -> None:
    print(f"arasfsr: {message}", file=sys.stderr)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files named directly, and the images inside named folders (sorted, not recursive)."""
    from ..folders import collect_sources

    return [src for src, _ in collect_sources(inputs)]


def output_size_check(args: argparse.Namespace) -> Callable[[Path, tuple[int, int]], tuple[int, int]]:
    """A check that the output asked for (--scale or --size, --max-pixels) is allowed for an
    input of size (w, h); returns the output's size."""
    from ..api import output_size

    def check(path: Path, in_size: tuple[int, int]) -> tuple[int, int]:
        try:
            return output_size(in_size, args.scale, args.size, args.max_pixels)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None

    return check


def plan_folder_run(args: argparse.Namespace, command: str,
                    outputs: Callable[[Path], list[Path]]) -> tuple[FolderRun, Path]:
    """The run of ``upscale`` or ``restore`` over its inputs, planned before any work:
    the inputs found, this rank's share of them under torchrun (with its own GPU and
    report), every output (``outputs(dst)``) checked, the --report path checked; and
    the output folder."""
    from ..errors import ArasfsrError
    from ..folders import (FolderRun, collect_sources, plan_items, rank_device, rank_report, refused_report,
                           torchrun_share, unreadable_items)

    output, skip_existing = getattr(args, "output", None), getattr(args, "skip_existing", None)
    rank, world = torchrun_share()
    report = rank_report(args.report, rank, world)
    unreadable: list | None = [] if args.continue_on_error else None
    try:
        sources = collect_sources(args.inputs, args.recursive, exclude=args.out_dir, unreadable=unreadable)
        if hasattr(args, "device"):
            args.device = rank_device(args.device)
        items = plan_items(sources, output, args.out_dir, args.overwrite, skip_existing, outputs,
                           share=(rank, world))
    except ArasfsrError as exc:
        refused_report(report, command, str(exc))  # a previous run's report must not stand for this one
        raise
    items += unreadable_items(unreadable or [], args.out_dir)
    run = FolderRun(items, args.continue_on_error, report, command, skip_existing=bool(skip_existing))
    run.check_report_path()
    return run, (args.out_dir if args.out_dir is not None else output.parent)
