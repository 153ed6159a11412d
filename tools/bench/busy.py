"""Other programs keeping cores busy, as on a user's machine, for the benchmarks.

``with busy_cores(n, seconds):`` starts ``n`` processes that spin; each stops by itself
after ``seconds`` (a bounded loop, so none outlives a killed benchmark for long), and all
are killed when the block ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SPIN = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass"


@contextmanager
def busy_cores(n: int, seconds: float) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine's load when a number was measured)."""
    return [round(v, 2) for v in os.getloadavg()]
