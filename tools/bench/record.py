"""What every benchmark result records beside its figures: the machine's CPU, the commit,
the command that reproduces it and the date; and writing it under ``benchmarks/results/``."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path


def provenance(module: str, argv: list[str] | None = None, src: Path | None = None) -> dict:
    """``{"cpu", "commit", "command", "date"}`` for a result of ``python -m MODULE ARGV``."""
    from arasfsr.runtime import cpu_model

    git = subprocess.run(["git", *(["-C", str(src)] if src else []), "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    args = sys.argv[1:] if argv is None else argv
    return {"cpu": cpu_model(), "commit": git.stdout.strip() or "unknown",
            "command": " ".join(["python -m", module, *args]),
            "date": datetime.datetime.now().isoformat(timespec="minutes")}


def write_result(path: Path | None, result: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
