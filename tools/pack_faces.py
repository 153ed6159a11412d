"""Copy training faces (and the val and test faces) for an accelerator machine.

The working tree that travels to an accelerator is limited to 64 MiB per call, so this
copies the original JPEG bytes (no recompression) of the faces in the seeded order that
``data.limit`` uses: the first N faces are the same faces as ``--set data.limit=N``.

Two layouts:

- ``python -m tools.pack_faces DEST [--count N | --max-mb MB]``: a data root
  ``DEST/utkface/{train,val}`` (as many faces as fit in ``--max-mb``, default 40 MB), for
  one call: ``arasfsr train paper/A-arasfsr --data-root DEST``.
- ``python -m tools.pack_faces --device-calls .devdata [--count N]``: uncompressed tar
  shards in one folder per call, ``.devdata/call-01/`` ... (``.devdata`` is git-ignored),
  each filling what the working tree leaves free of a call's 64 MiB (measured from
  ``git ls-files`` now, less ``--margin-mb``). ``call-01`` also holds the val and test
  sets (utkface/test, ffhq/test) that the session's evaluation needs. On the warm machine
  ignored paths persist between calls, so consecutive calls each carry one folder
  (``carry: [".devdata/call-02"]``) and the last call finds them all;
  ``tools/device_session.py`` unpacks every shard into ``.devdata/root``. The plan
  (calls, sizes, face counts, carry lists) is written to ``.devdata/plan.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from arasfsr.data import resolve_data_root
from arasfsr.training.data import SUBSET_SEED, list_images

from tools import ROOT
CALL_LIMIT = 64 * 2**20  # the device tool's working-tree limit per call
TAR_END = 10240          # at most what a tar adds after its members (closing blocks, record padding)


def training_order(source: Path) -> list[Path]:
    """The training faces in the seeded order behind ``data.limit``."""
    order = list(list_images(source / "utkface" / "train"))
    random.Random(SUBSET_SEED).shuffle(order)
    return order


def tree_bytes(repo: Path = ROOT) -> int:
    """Bytes of the working tree that travels: tracked plus untracked-not-ignored files."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return sum((repo / name).stat().st_size for name in out.decode().split("\0")
               if name and (repo / name).is_file())


def member_bytes(path: Path) -> int:
    """A file's bytes inside a tar: a 512-byte header and the data padded to 512."""
    return 512 + -(-path.stat().st_size // 512) * 512


def write_tar(path: Path, files: list[tuple[Path, str]]) -> None:
    """An uncompressed tar of ``(file, name inside)``; JPEG and PNG bytes do not compress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for src, name in files:
            info = tarfile.TarInfo(name)
            data = src.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


def _carry_name(folder: Path) -> str:
    """The folder as the device tool's ``carry`` names it: relative to the repository root."""
    try:
        return str(folder.resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


def device_calls(source: Path, dest: Path, count: int | None, margin_mb: float, tree: int | None = None) -> dict:
    """Write ``dest/call-NN/*.tar`` and ``dest/plan.json``; return the plan."""
    tree = tree_bytes() if tree is None else tree
    capacity = CALL_LIMIT - tree - int(margin_mb * 2**20)
    evaluation = [(p, f"{ds}/{p.name}") for ds in ("utkface/val", "utkface/test", "ffhq/test")
                  for p in list_images(source / ds)]
    eval_bytes = sum(member_bytes(p) for p, _ in evaluation) + TAR_END
    if capacity < eval_bytes + 64 * 2**10:
        raise SystemExit(f"pack_faces: the working tree takes {tree / 2**20:.1f} MiB: a call has "
                         f"{capacity / 2**20:.1f} MiB left, the evaluation faces need {eval_bytes / 2**20:.1f}")
    everything = training_order(source)
    train = everything[:count]
    calls: list[dict] = []
    position = 0
    while position < len(train) or not calls:
        number = len(calls) + 1
        folder = dest / f"call-{number:02d}"
        tars, used = [], 0
        if number == 1:  # the evaluation faces travel with the first call
            write_tar(folder / "eval.tar", evaluation)
            used = (folder / "eval.tar").stat().st_size
            tars.append({"tar": "eval.tar", "files": len(evaluation), "bytes": used})
        shard, size = [], TAR_END
        while position < len(train) and used + size + member_bytes(train[position]) <= capacity:
            shard.append((train[position], f"utkface/train/{train[position].name}"))
            size += member_bytes(train[position])
            position += 1
        if shard:
            write_tar(folder / f"train-{number:02d}.tar", shard)
            size = (folder / f"train-{number:02d}.tar").stat().st_size  # <= the estimate that packed it
            tars.append({"tar": f"train-{number:02d}.tar", "files": len(shard), "bytes": size})
            used += size
        calls.append({"carry": _carry_name(folder), "bytes": used, "train_faces": len(shard), "tars": tars})
    plan = {"tree_bytes": tree, "call_capacity_bytes": capacity, "calls": calls,
            "train_faces": len(train), "of": len(everything),
            "note": "carry call-01 first, then one folder per call on the same warm machine (ignored paths "
                    "persist there); the last call runs `PYTHONPATH=src python -m tools.device_session`, which unpacks them all."}
    (dest / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return plan


def flat_copy(source: Path, dest: Path, count: int | None, max_mb: float) -> int:
    """The single-call layout: ``dest/utkface/{train,val}`` with as many faces as fit."""
    val = list_images(source / "utkface" / "val")
    budget = int(max_mb * 1e6) - sum(p.stat().st_size for p in val)
    chosen, total = [], 0
    for path in training_order(source):
        size = path.stat().st_size
        if (count is not None and len(chosen) >= count) or (count is None and total + size > budget):
            break
        chosen.append(path)
        total += size
    for split, files in (("train", chosen), ("val", val)):
        folder = dest / "utkface" / split
        folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, folder / path.name)
    mb = (total + sum(p.stat().st_size for p in val)) / 1e6
    print(f"copied {len(chosen)} training faces and {len(val)} val faces ({mb:.1f} MB) to {dest}; "
          f"train with --data-root {dest} (same faces as --set data.limit={len(chosen)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path, nargs="?", help="folder to create (DEST/utkface/{train,val})")
    ap.add_argument("--device-calls", type=Path, metavar="DIR", help="write per-call tar shards into DIR instead")
    ap.add_argument("--source", type=Path, default=resolve_data_root(),
                    help="data root holding utkface/ and ffhq/ (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    ap.add_argument("--count", type=int, help="training faces to copy (default: as many as fit / all)")
    ap.add_argument("--max-mb", type=float, default=40.0, help="flat layout: size budget in MB (10^6 bytes)")
    ap.add_argument("--margin-mb", type=float, default=1.0, help="device calls: MiB left free in each call")
    args = ap.parse_args(argv)
    target = args.device_calls or args.dest
    if target is None:
        ap.error("give DEST or --device-calls DIR")
    if target.exists() and any(target.iterdir()):
        print(f"pack_faces: {target} exists and is not empty", file=sys.stderr)
        return 2
    if args.device_calls is None:
        return flat_copy(args.source, args.dest, args.count, args.max_mb)
    plan = device_calls(args.source, args.device_calls, args.count, args.margin_mb)
    for i, call in enumerate(plan["calls"], 1):
        print(f"call {i}: carry {call['carry']}  {call['bytes'] / 2**20:.1f} MiB, {call['train_faces']} training faces")
    print(f"{plan['train_faces']} of {plan['of']} training faces in {len(plan['calls'])} calls; the tree takes "
          f"{plan['tree_bytes'] / 2**20:.1f} MiB, a call has {plan['call_capacity_bytes'] / 2**20:.1f} MiB free; "
          f"plan: {args.device_calls / 'plan.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
