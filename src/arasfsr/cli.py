"""The ``arasfsr`` command: a thin layer over the Python API.

Every user-facing problem is an :class:`~arasfsr.errors.ArasfsrError`: printed as one
line ``arasfsr: error: ...`` with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .errors import ArasfsrError, InputError

EXIT_USAGE = 2


def parse_scale(text: str) -> float | tuple[float, float]:
    """``4``, ``3.5`` or ``SYxSX`` such as ``2x3``."""
    parts = re.split(r"[x,]", text.lower())
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid scale {text!r}: use S or SYxSX, e.g. 4 or 2x3") from None
    if len(values) not in (1, 2) or not all(v > 0 and v == v and v != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"invalid scale {text!r}: factors must be positive numbers")
    return values[0] if len(values) == 1 else (values[0], values[1])


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` such as ``173x131``."""
    m = re.fullmatch(r"\s*(-?\d+)\s*[x,]\s*(-?\d+)\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use WxH, e.g. 173x131")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: width and height must be at least 1")
    return w, h


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: must be at least 1")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .api import DEFAULT_MAX_PIXELS
    from .registry import DEFAULT_MODEL

    parser = _Parser(prog="arasfsr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("upscale", help="super-resolve images or folders of images")
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    dest = up.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output", type=Path, help="output file (one input image)")
    dest.add_argument("--out-dir", type=Path, help="output folder (any number of inputs)")
    amount = up.add_mutually_exclusive_group(required=True)
    amount.add_argument("--scale", type=parse_scale, help="factor S or SYxSX (e.g. 4, 3.5, 2x3)")
    amount.add_argument("--size", type=parse_size, help="exact output size WxH (e.g. 173x131)")
    up.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or .safetensors path (default {DEFAULT_MODEL})")
    up.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    up.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    up.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                    help=f"refuse outputs larger than this (default {DEFAULT_MAX_PIXELS:,})")
    up.add_argument("--chunk-size", type=_positive_int, default=None,
                    help="queries per forward pass (default: automatic, from free memory)")
    up.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="implicit decoder precision; auto = bf16 where the hardware has it (default)")
    up.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                    help="onnx: run with onnxruntime (--model may be an .onnx file; needs arasfsr[onnx])")

    exp = sub.add_parser("export", help="export a model to ONNX (dynamic input and output sizes)")
    exp.add_argument("--model", default=DEFAULT_MODEL, help="model name or .safetensors path")
    exp.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="output file")
    exp.add_argument("--overwrite", action="store_true", help="replace the output if it exists")

    models = sub.add_parser("models", help="list the named models")
    models.add_argument("--info", metavar="NAME", help="show one model's card")

    demo = sub.add_parser("demo", help="super-resolve the bundled astronaut face at x2, x3.5 and x8")
    demo.add_argument("-o", "--out-dir", type=Path, default=Path("arasfsr-demo"))
    demo.add_argument("--model", default=DEFAULT_MODEL)
    demo.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from . import commands

        return getattr(commands, f"cmd_{args.command}")(args) or 0
    except ArasfsrError as exc:
        print(f"arasfsr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("arasfsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
