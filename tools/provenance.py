"""Where a benchmark result came from, recorded inside it: every JSON a tool writes under
``benchmarks/results/`` starts with a ``provenance`` object (the commit, the machine, the
command and the date), so that a figure in the docs can be traced to the code and the
machine that produced it, and re-run."""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arasfsr.atomic import atomic_write_text

from tools import ROOT


def _run(cmd: list[str]) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def commit() -> str:
    """This checkout's commit, ``+dirty`` when tracked files differ from it; "unknown" without git
    (a copy of the working tree on a lent machine has no history)."""
    head = _run(["git", "rev-parse", "HEAD"])
    if not head:
        return "unknown"
    return head + ("+dirty" if _run(["git", "status", "--porcelain", "--untracked-files=no"]) else "")


def machine() -> str:
    """The CPU model and the cores this process may use, and the GPUs ``nvidia-smi`` lists."""
    cpu = None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [f"{cpu or platform.processor() or 'unknown CPU'}, {cores} cores"]
    gpus = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]) if shutil.which("nvidia-smi") else None
    if gpus:
        parts.append(" + ".join(gpus.splitlines()))
    return "; ".join(parts)


def provenance(module: str, argv: Sequence[str] | None = None) -> dict[str, str]:
    """The record for a result written now by ``python -m module argv...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return {"commit": commit(), "machine": machine(), "command": shlex.join(["python", "-m", module, *args]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_result(path: Path | str, result: dict[str, Any], module: str, argv: Sequence[str] | None = None,
                 indent: int = 2) -> Path:
    """Write ``result`` as JSON with its provenance first (atomically: a failed write leaves no half file)."""
    record = {"provenance": provenance(module, argv), **result}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(record, indent=indent) + "\n")
