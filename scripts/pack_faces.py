"""Copy a fixed subset of the training faces (and the val faces) for an accelerator machine.

The working tree that travels to an accelerator is limited to 64 MiB, so this copies the
original JPEG bytes (no recompression) of the first N faces of the same seeded order that
``data.limit`` uses, N being the most that fit under ``--max-mb`` (default 40 MB, train
and val together), into ``DEST/utkface/{train,val}``. Then train there with
``arasfsr train paper/A-arasfsr --data-root DEST --set data.limit=N``, or without the limit.

    python scripts/pack_faces.py packed/                 # as many as fit in 40 MB
    python scripts/pack_faces.py packed/ --count 3000    # exactly 3000 training faces
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from arasfsr.data import resolve_data_root  # noqa: E402
from arasfsr.training.data import SUBSET_SEED, list_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path, help="folder to create (DEST/utkface/{train,val})")
    ap.add_argument("--source", type=Path, default=resolve_data_root(),
                    help="data root holding utkface/ (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    ap.add_argument("--count", type=int, help="training faces to copy (default: as many as fit)")
    ap.add_argument("--max-mb", type=float, default=40.0, help="size budget in MB (10^6 bytes)")
    args = ap.parse_args(argv)

    train = list_images(args.source / "utkface" / "train")
    val = list_images(args.source / "utkface" / "val")
    budget = int(args.max_mb * 1e6) - sum(p.stat().st_size for p in val)
    order = list(train)
    random.Random(SUBSET_SEED).shuffle(order)  # the order behind `data.limit`
    chosen, total = [], 0
    for path in order:
        size = path.stat().st_size
        if (args.count is not None and len(chosen) >= args.count) or \
                (args.count is None and total + size > budget):
            break
        chosen.append(path)
        total += size
    if args.dest.exists() and any(args.dest.iterdir()):
        print(f"pack_faces: {args.dest} exists and is not empty", file=sys.stderr)
        return 2
    for split, files in (("train", chosen), ("val", val)):
        folder = args.dest / "utkface" / split
        folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, folder / path.name)
    mb = (total + sum(p.stat().st_size for p in val)) / 1e6
    print(f"copied {len(chosen)} training faces and {len(val)} val faces ({mb:.1f} MB) to {args.dest}; "
          f"train with --data-root {args.dest} (same faces as --set data.limit={len(chosen)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
