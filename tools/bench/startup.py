"""Start-up time of the command line: ``--help``, a sub-command's help, a usage error.

    python -m tools.bench.startup                  # 10 runs each, median/min/max wall seconds
    python -m tools.bench.startup --busy-cores 1   # the same with one core kept busy

Each run is a fresh process, as a user starts it. ``--busy-cores N`` keeps N other processes
spinning for the length of the measurement (each stops by itself after ``--busy-seconds``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from tools.bench.busy import busy_cores, load_average

COMMANDS = {
    "arasfsr --help": ["--help"],
    "arasfsr upscale --help": ["upscale", "--help"],
    "arasfsr eval --help": ["eval", "--help"],
    "arasfsr upscale x.png (usage error)": ["upscale", "x.png"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--busy-cores", type=int, default=0)
    parser.add_argument("--busy-seconds", type=float, default=120.0)
    args = parser.parse_args()
    print(f"load average {load_average()}")
    with busy_cores(args.busy_cores, args.busy_seconds):
        for name, argv in COMMANDS.items():
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "arasfsr", *argv], capture_output=True, check=False)
                times.append(time.perf_counter() - start)
            print(f"{name:38s} median {statistics.median(times):.3f} s  min {min(times):.3f}  "
                  f"max {max(times):.3f}  ({args.runs} runs, {args.busy_cores} busy cores)")


if __name__ == "__main__":
    main()
