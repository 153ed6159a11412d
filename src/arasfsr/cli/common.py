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
from ..errors import InputError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from ..api import Upscaler

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors on one line with exit status 2, whichever sub-command."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"arasfsr: error: {message} (see `{self.prog} --help`)\n")


# --- values ---------------------------------------------------------------------------


def _whole_number(text: str) -> int | None:
    """``12``, ``2e7``, ``16_777_216`` -> int; None for anything that is not a whole number."""
    if not re.fullmatch(r"\s*[\d_.eE+-]+\s*", text):
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        return None
    return int(value) if value == value and abs(value) != float("inf") and value == int(value) else None


def parse_count(text: str, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (the one check of every integer option)."""
    value = _whole_number(text)
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: give a whole number of at least {minimum}")
    return value


def parse_count_or_zero(text: str) -> int:
    return parse_count(text, minimum=0)


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` such as ``173x131``."""
    parts = re.split(r"[x,]", text.lower())
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use WxH, e.g. 173x131")
    values = [_whole_number(p) for p in parts]
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
    """``-o OUT`` (one input) or ``--out-dir DIR``, and ``--overwrite``."""
    dest = parser.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output", type=Path, metavar="OUT", help=file_help)
    dest.add_argument("--out-dir", type=Path, metavar="DIR", help=dir_help)
    add_overwrite_option(parser)


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
                          pixel_limit: bool = True) -> None:
    """The options of every command that renders with one model: --model, --device,
    --precision, --engine, --chunk-size and (unless the outputs are fixed) --max-pixels."""
    parser.add_argument("--model", default=defaults.DEFAULT_MODEL, metavar="NAME|PATH",
                        help=f"{model_help}: a name (`arasfsr models`) or a .safetensors path "
                             f"(default {defaults.DEFAULT_MODEL})")
    add_device_option(parser)
    add_precision_option(parser)
    parser.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                        help="onnx: run with onnxruntime (--model may be an .onnx file; needs arasfsr[onnx])")
    add_chunk_size_option(parser)
    if pixel_limit:
        parser.add_argument("--max-pixels", type=parse_count, default=defaults.DEFAULT_MAX_PIXELS, metavar="N",
                            help=f"refuse outputs with more pixels than N (default {defaults.DEFAULT_MAX_PIXELS:,})")


def load_renderer(args: argparse.Namespace, name: str | None = None) -> Upscaler:
    """The model ``name`` (default ``--model``) loaded with the rendering options."""
    from ..api import load_model

    return load_model(args.model if name is None else name, device=args.device, precision=args.precision,
                      engine=args.engine)


# --- inputs and outputs ---------------------------------------------------------------


def note(message: str) -> None:
    print(f"arasfsr: {message}", file=sys.stderr)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files named directly, and the images inside named folders (sorted, not recursive)."""
    from ..imageio import IMAGE_SUFFIXES, image_files, input_path_problem

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
    from ..imageio import read_image

    images = []
    for f in files:
        img, notes = read_image(f, rgb=rgb)
        for text in notes:
            note(f"{f}: {text}")
        if check is not None:
            check(f, img)
        images.append(img)
    return images


def output_size_check(args: argparse.Namespace) -> Callable[[Path, Image.Image], None]:
    """A ``read_inputs`` check that the output asked for (--scale or --size, --max-pixels) is
    allowed for each input, so that a bad size fails before any work."""
    from ..api import output_size

    def check(path: Path, img: Image.Image) -> None:
        try:
            output_size(img.size, args.scale, args.size, args.max_pixels)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None

    return check


def plan_outputs(files: list[Path], output: Path | None, out_dir: Path | None, overwrite: bool) -> list[Path]:
    """One output path per input; refuses clashes and outputs that exist (without overwrite)."""
    from ..imageio import check_output_dir, check_output_path

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


def known_problem(exc: BaseException) -> str | None:
    """A one-line message for an exception that is the user's or the machine's problem, not a bug."""
    if isinstance(exc, (InputError, ModelError)):
        return str(exc)
    memory = memory_problem(exc)
    if memory is not None:
        return memory
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


# Where an allocation failed says what to shrink: the encoder and what is computed once per
# input position grow with the input, the implicit decoder's passes with --chunk-size, the
# rest (the output canvas, bicubic, pasting faces back) with the output.
_INPUT_STAGES = frozenset({"encode", "project"})
_CHUNK_STAGES = frozenset({"query", "query_fast"})


def memory_problem(exc: BaseException, chunk_option: bool = True) -> str | None:
    """"out of memory; ADVICE (the allocator's whole first line)" when ``exc`` is running out of
    memory, the advice fitting where it ran out; else None."""
    import traceback

    from ..imageio import one_line

    text = str(exc).lower()
    if not (isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            s in text for s in ("out of memory", "can't allocate memory", "not enough memory")))):
        return None
    stages = {frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)}
    if stages & _INPUT_STAGES:
        advice = "the input image is too large for this machine's memory; shrink or crop it first"
    elif stages & _CHUNK_STAGES and chunk_option:
        advice = "lower --chunk-size"
    else:
        advice = "ask for a smaller output" + (" (--scale or --size)" if chunk_option else " (scale or size)")
    if "cuda" in text and chunk_option:
        advice += ", or use --device cpu"
    return f"out of memory; {advice} ({one_line(exc)})"
