"""The ``arasfsr`` command: a thin layer over the Python API.

Every user-facing problem (an :class:`~arasfsr.errors.ArasfsrError`, a usage error, running
out of memory) is printed as one line ``arasfsr: error: ...`` with exit status 2, never a
traceback. Anything else is a bug: one line saying so, exit status 1, and the traceback
when the environment variable ``ARASFSR_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from pathlib import Path

EXIT_USAGE = 2
EXIT_BUG = 1
DEBUG_ENV = "ARASFSR_DEBUG"


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


def parse_count(text: str) -> int:
    """A positive whole number; ``2e7`` and ``16_777_216`` are accepted."""
    try:
        value = float(text.replace("_", "")) if re.fullmatch(r"[\d_.eE+-]+", text) else float("nan")
    except ValueError:
        value = float("nan")
    if not (value == value and value != float("inf") and value == int(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: give a whole number of at least 1")
    return int(value)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, whichever sub-command
        self.exit(EXIT_USAGE, f"arasfsr: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .api import DEFAULT_MAX_PIXELS
    from .registry import DEFAULT_MODEL

    parser = _Parser(prog="arasfsr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("upscale", help="super-resolve images or folders of images")
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    dest = up.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output", type=Path, metavar="OUT",
                      help="output file, its format from the suffix (one input image)")
    dest.add_argument("--out-dir", type=Path, metavar="DIR",
                      help="output folder, one NAME.png per input image (created if missing)")
    amount = up.add_mutually_exclusive_group(required=True)
    amount.add_argument("--scale", type=parse_scale, metavar="S|SYxSX",
                        help="factor S, or SY (height) x SX (width), e.g. 4, 3.5, 2x3")
    amount.add_argument("--size", type=parse_size, metavar="WxH", help="exact output size, e.g. 173x131")
    up.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                    help=f"model name (`arasfsr models`) or .safetensors path (default {DEFAULT_MODEL})")
    up.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    up.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    up.add_argument("--max-pixels", type=parse_count, default=DEFAULT_MAX_PIXELS, metavar="N",
                    help=f"refuse outputs with more pixels than N (default {DEFAULT_MAX_PIXELS:,})")
    up.add_argument("--chunk-size", type=parse_count, default=None, metavar="N",
                    help="pixels queried per forward pass (default: automatic, from free memory)")
    up.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="implicit decoder precision; auto = bf16 where the hardware has it (default)")
    up.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                    help="onnx: run with onnxruntime (--model may be an .onnx file; needs arasfsr[onnx])")

    exp = sub.add_parser("export", help="export a model to ONNX (dynamic input and output sizes)")
    exp.add_argument("--model", default=DEFAULT_MODEL, help="model name or .safetensors path")
    exp.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="output file")
    exp.add_argument("--overwrite", action="store_true", help="replace the output if it exists")

    models = sub.add_parser("models", help="list the named models")
    models.add_argument("--info", metavar="NAME", help="show one model's card (a name or .safetensors path)")
    models.add_argument("--all", action="store_true", help="also list the untrained architecture presets")

    demo = sub.add_parser("demo", help="super-resolve the astronaut face from scikit-image at x2, x3.5 and x8")
    demo.add_argument("-o", "--out-dir", type=Path, default=Path("arasfsr-demo"), metavar="DIR",
                      help="where the results go (default arasfsr-demo; its demo files are replaced)")
    demo.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH")
    demo.add_argument("--device", default="cpu", choices=["cpu", "cuda"])

    from .evaluation.commands import add_parsers as add_evaluation_parsers

    add_evaluation_parsers(sub)  # eval, compare

    from .faces.cli import add_parsers as add_face_parsers

    add_face_parsers(sub)
    add_train_parser(sub)
    return parser


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``--size -5x10`` -> ``--size=-5x10``, so that argparse reports the bad value itself
    instead of "expected one argument" (it takes ``-5x10`` for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--scale", "--size") and re.match(r"-[\d.]", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train a model from a config (Lightning)")
    tr.add_argument("config", help="config file, or a shipped name such as paper/A-arasfsr")
    tr.add_argument("--resume", metavar="CKPT", help="training checkpoint (or run folder) to resume")
    tr.add_argument("--init", type=Path, metavar="WEIGHTS",
                    help="start from an exported .safetensors model of the same config (fine-tune)")
    tr.add_argument("--out", type=Path, help="run folder (default runs/<tier>/<name>)")
    tr.add_argument("--data-root", type=Path, help="folder holding the config's data folders")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. train.iterations=20000 (repeatable)")
    tr.add_argument("--devices", type=int, help="devices per node (torchrun sets this itself)")
    tr.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--precision", help="Lightning precision, e.g. bf16-mixed, 16-mixed, 32-true")
    tr.add_argument("--num-workers", type=int, help="data loading processes")


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0, 2 for user errors, 1 for bugs)."""
    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        from . import commands

        return getattr(commands, f"cmd_{args.command}")(args) or 0
    except KeyboardInterrupt:
        print("arasfsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `arasfsr models | head -1`: quietly, like other tools
        try:  # stop Python's own flush at exit from failing again on the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except Exception as exc:
        from .commands import known_problem
        from .errors import ArasfsrError

        message = str(exc) if isinstance(exc, ArasfsrError) else known_problem(exc)
        if debug:
            traceback.print_exc()
        if message is not None:
            print(f"arasfsr: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"arasfsr: error: internal error, this is a bug in arasfsr ({type(exc).__name__}: {first}); "
              f"rerun with {DEBUG_ENV}=1 to see the traceback and please report it", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
