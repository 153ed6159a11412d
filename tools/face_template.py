"""Estimate the 5-landmark alignment template from the UTKFace crops the models train on.

Runs the face detector on every crop of a split (default utkface/val) and prints the mean
landmark positions as fractions of the crop side: the numbers of
``arasfsr.faces.align.TEMPLATE``.

    python -m tools.face_template --split val         # --data DIR, default $ARASFSR_DATA or ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.faces.detect import load_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=resolve_data_root())
    ap.add_argument("--split", default="val", choices=["train", "val"], help="never the test split")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    files = sorted((args.data / "utkface" / args.split).glob("*.jpg"))[: args.limit]
    det = load_detector()
    marks, missed = [], 0
    for f in files:
        img = Image.open(f).convert("RGB")
        faces = det.detect(np.asarray(img))
        if not faces:
            missed += 1
            continue
        marks.append(max(faces, key=lambda x: x.eye_distance).landmarks / np.array(img.size))
    arr = np.array(marks)
    eyes = np.hypot(*(arr[:, 1] - arr[:, 0]).T)
    print(f"{len(arr)} of {len(files)} crops with a face ({missed} without)")
    print("TEMPLATE = np.array(" + np.array2string(arr.mean(0).round(4), separator=", ") + ")")
    print("spread (std) =", np.array2string(arr.std(0).round(4), separator=", "))
    print(f"eye-centre distance: {eyes.mean():.4f} of the side (std {eyes.std():.4f})")


if __name__ == "__main__":
    main()
