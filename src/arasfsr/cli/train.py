"""``arasfsr train``: train a model from a config (Lightning)."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from .common import parse_count, parse_count_or_zero


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train a model from a config (Lightning)")
    tr.add_argument("config", help="config file, or a shipped name such as paper/A-arasfsr")
    tr.add_argument("--resume", metavar="CKPT", help="training checkpoint (or run folder) to resume")
    tr.add_argument("--init", type=Path, metavar="WEIGHTS",
                    help="start from an exported .safetensors model of the same config (fine-tune)")
    tr.add_argument("--out", type=Path, help="run folder (default runs/<tier>/<name>)")
    tr.add_argument("--data-root", type=Path, help="folder holding the config's data folders")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. train.iterations=20000 (repeatable)")
    tr.add_argument("--devices", type=parse_count, metavar="N", help="devices per node (torchrun sets this itself)")
    tr.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda"])
    # Not --precision: in every other command that is the implicit decoder's precision.
    tr.add_argument("--trainer-precision", metavar="P",
                    help="Lightning precision, e.g. bf16-mixed, 16-mixed, 32-true (default: the config's)")
    tr.add_argument("--precision", type=_renamed_precision, help=argparse.SUPPRESS)
    tr.add_argument("--num-workers", type=parse_count_or_zero, metavar="N", help="data loading processes")
    tr.set_defaults(func=run_train)


def _renamed_precision(text: str) -> str:
    raise argparse.ArgumentTypeError("train's --precision is --trainer-precision since arasfsr 0.2.0 "
                                     "(--precision is the implicit decoder's in the other commands)")


def run_train(args: argparse.Namespace) -> int:
    from ..training.run import train

    path = train(args.config, out=args.out, resume=args.resume, data_root=args.data_root,
                 overrides=args.overrides, devices=args.devices, accelerator=args.accelerator,
                 precision=args.trainer_precision, num_workers=args.num_workers, command=retrain_command(args),
                 init=args.init)
    print(path)
    return 0


def train_argv(config: str | Path, *, data_root: Path | None = None, out: Path | None = None,
               devices: int | None = None, init: Path | None = None, trainer_precision: str | None = None,
               num_workers: int | None = None, accelerator: str = "auto",
               overrides: Sequence[str] = ()) -> list[str]:
    """``arasfsr train``'s arguments (after the program), an option only where it is set:
    the one spelling of this command's flags, for the command a card records
    (:func:`retrain_command`) and for programs that launch runs."""
    parts = ["train", str(config)]
    for flag, value in (("--data-root", data_root), ("--out", out), ("--devices", devices), ("--init", init),
                        ("--trainer-precision", trainer_precision), ("--num-workers", num_workers)):
        if value is not None:
            parts += [flag, str(value)]
    if accelerator != "auto":
        parts += ["--accelerator", accelerator]
    for item in overrides:
        parts += ["--set", item]
    return parts


def retrain_command(args: argparse.Namespace) -> str:
    """The ``arasfsr train`` command line that reruns this training (without --resume)."""
    parts = ["arasfsr", *train_argv(args.config, data_root=args.data_root, out=args.out, devices=args.devices,
                                    init=args.init, trainer_precision=args.trainer_precision,
                                    num_workers=args.num_workers, accelerator=args.accelerator,
                                    overrides=args.overrides)]
    if "LOCAL_WORLD_SIZE" in os.environ:  # launched by torchrun
        parts = ["torchrun", f"--nproc_per_node={os.environ['LOCAL_WORLD_SIZE']}", "-m", "arasfsr.cli",
                 *parts[1:]]
    return shlex.join(parts)
