"""Other programs keeping cores busy, as on a user's machine, for the benchmarks.

``with busy_cores(n, seconds[, duty]):`` starts ``n`` processes that spin; each stops by itself
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
# Busy a share (argv[2]) of every 10 ms: a program that keeps a core partly busy.
DUTY = ("import sys, time\nend, duty = time.time() + float(sys.argv[1]), float(sys.argv[2])\n"
        "while time.time() < end:\n    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < 0.01 * duty: pass\n    time.sleep(0.01 * (1 - duty))")


@contextmanager
def busy_cores(n: int, seconds: float, duty: float = 1.0) -> Iterator[None]:
    """``duty`` < 1: each process is busy that share of the time."""
    code, extra = (SPIN, []) if duty >= 1 else (DUTY, [str(duty)])
    procs = [subprocess.Popen([sys.executable, "-c", code, str(seconds), *extra]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine's load when a number was measured)."""
    return [round(v, 2) for v in os.getloadavg()]
