"""Images per second of ``arasfsr upscale`` on a folder of faces, one by one vs batched.

    python -m tools.bench.batch                       # 1,000 utkface/test faces 64x64 -> 256x256
    python -m tools.bench.batch --faces 100 --busy-cores 1

The faces (utkface/test shrunk to 64x64; measuring speed is not model selection) go into a
temporary folder that is removed at the end. Each ``--batch-sizes`` value is one
``arasfsr upscale FOLDER --out-dir ... --size 256x256 --batch-size N`` process, timed
whole (start-up and model loading included, the same for every variant), one after the
other in the same run; the load average is printed before and after each, and the
outputs of every variant are checked to be the same files. ``--busy-cores N`` keeps N
other processes spinning for the length of the run (each stops by itself).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from tools.bench.busy import SPIN

from arasfsr.data import resolve_data_root


def make_faces(folder: Path, count: int, side: int, split: str) -> None:
    sources = sorted((resolve_data_root() / "utkface" / split).glob("*.jpg"))
    if not sources:
        sys.exit(f"no faces in {resolve_data_root() / 'utkface' / split}")
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as img:
            img.convert("RGB").resize((side, side), Image.BICUBIC).save(folder / f"face{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--model", default="arasfsr")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--input", type=int, default=64, help="input side (default 64)")
    parser.add_argument("--output", type=int, default=256, help="output side (default 256)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--busy-cores", type=int, default=0)
    parser.add_argument("--busy-seconds", type=float, default=7200.0)
    args = parser.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="arasfsr-batch-"))
    busy = [subprocess.Popen([sys.executable, "-c", SPIN, str(args.busy_seconds)]) for _ in range(args.busy_cores)]
    try:
        (work / "in").mkdir()
        make_faces(work / "in", args.faces, args.input, args.split)
        env = dict(os.environ)
        print(f"{args.faces} faces {args.input}->{args.output}, model {args.model}, {os.cpu_count()} CPUs, "
              f"{args.busy_cores} busy cores, OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
        for b in sizes:
            before = os.getloadavg()[0]
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "arasfsr", "upscale", str(work / "in"), "--out-dir",
                            str(work / f"out{b}"), "--size", f"{args.output}x{args.output}", "--model", args.model,
                            "--batch-size", str(b)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            seconds = time.perf_counter() - start
            print(f"batch size {b:3d}: {seconds:8.1f} s  {args.faces / seconds:7.3f} images/s  "
                  f"(load average {before:.1f} before, {os.getloadavg()[0]:.1f} after)", flush=True)
        names = sorted(os.listdir(work / "in"))
        for b in sizes[1:]:
            same = filecmp.cmpfiles(work / f"out{sizes[0]}", work / f"out{b}", names, shallow=False)[0]
            print(f"batch size {b} outputs identical to batch size {sizes[0]}: {len(same) == len(names)}")
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
