"""What the command-line tests share: running ``arasfsr`` in-process or without read
access, making small images, and reading trees of files and reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arasfsr.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def image(path: Path, size=(8, 8), seed=0, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_read_access(argv: list[str]) -> subprocess.CompletedProcess:
    """``arasfsr ARGV`` in a process that file permissions apply to (root reads everything:
    it runs without the capabilities that let it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "arasfsr.cli", *map(str, argv)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: file permissions cannot be tested")
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)



def report_of(path: Path) -> dict:
    return json.loads(path.read_text())


def default_stop_signals() -> None:
    """``preexec_fn`` for a command a test stops with a signal: SIGINT, SIGTERM and SIGHUP at
    their default action, as a terminal finds them. A suite started in the background
    (``pytest &``) or under ``nohup`` inherits SIGINT or SIGHUP ignored, and the command,
    rightly, leaves an ignored signal ignored."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
