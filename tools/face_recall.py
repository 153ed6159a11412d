"""Recall of the face detector at several face sizes.

Two kinds of test photo:

* synthetic scenes: UTKFace test faces shrunk so that their eye centres lie D pixels apart
  and pasted (feathered, optionally rotated) at known places into face-free scenes made
  from scikit-image's sample pictures; a face counts as found when a detection has both eye
  centres within 0.25 D of the truth;
* real photos (``--photo``): the faces found at full resolution (listed, check them by eye)
  are the reference; the photo is shrunk step by step and each reference face counts as
  found when a detection has its eye centres within 0.25 D of the shrunk reference.

    python -m tools.face_recall --faces 60 --json recall.json
    python -m tools.face_recall --photo group.jpg --sizes 10 14 20 28 40

Prints a Markdown table: eye distance D, faces, found, recall, false detections.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from arasfsr.data import resolve_data_root
from arasfsr.faces.align import TEMPLATE
from arasfsr.faces.detect import Face, load_detector

from tools.provenance import write_result

SCENES = ("coffee", "chelsea", "rocket", "gravel", "hubble_deep_field", "immunohistochemistry")
SCENE_SIZE = (800, 600)


class YufaceDetector:
    """libfacedetection (YuNet) through the yuface wheel, for comparison only."""

    def __init__(self) -> None:
        import yuface

        self._detect = yuface.c_detect

    def detect(self, image: np.ndarray) -> list[Face]:
        out = self._detect(np.ascontiguousarray(image[:, :, ::-1]))
        faces = []
        for row in out:
            if row[0] < 50:
                continue
            x, y, w, h = (float(v) for v in row[1:5])
            marks = row[5:15].astype(np.float64).reshape(5, 2) + 0.5  # integer pixels -> centres
            faces.append(Face(np.array([x, y, x + w, y + h]), marks, row[0] / 100))
        return faces


def make_detector(name: str):
    return YufaceDetector() if name == "yuface" else load_detector("mtcnn")


def scene_backgrounds() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in SCENES:
        img = getattr(data, name)()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        out.append(np.asarray(Image.fromarray(img).resize(SCENE_SIZE, Image.BICUBIC)))
    return out


def paste(scene: np.ndarray, face: Image.Image, x: int, y: int) -> None:
    """Alpha-blend ``face`` at (x, y) with a feathered edge (no hard rectangle)."""
    w, h = face.size
    ramp = max(1.0, 0.08 * w)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    edge = np.minimum.reduce([xx, w - xx, yy, h - yy])
    alpha = np.clip(edge / ramp, 0, 1)[..., None]
    if face.mode == "RGBA":  # rotated faces carry their own transparency
        alpha = alpha * (np.asarray(face)[..., 3:] / 255.0)
    region = scene[y:y + h, x:x + w].astype(np.float64)
    rgb = np.asarray(face.convert("RGB")).astype(np.float64)
    scene[y:y + h, x:x + w] = np.round(alpha * rgb + (1 - alpha) * region).astype(np.uint8)


def synthetic_scenes(face_files: list[Path], eye_px: float, angle: float, rng: np.random.Generator):
    """Yield (scene, true 2x2 eye centres per face) with every face pasted once."""
    backgrounds = scene_backgrounds()
    eye_template = TEMPLATE[:2] * 200.0  # eye centres in a 200x200 UTKFace crop
    zoom = eye_px / float(np.hypot(*(eye_template[1] - eye_template[0])))
    side = max(4, round(200 * zoom))
    cell = int(side * 1.6) + 8
    cols, rows = max(1, SCENE_SIZE[0] // cell), max(1, SCENE_SIZE[1] // cell)
    queue = list(face_files)
    k = 0
    while queue:
        scene = backgrounds[k % len(backgrounds)].copy()
        truths = []
        for r in range(rows):
            for c in range(cols):
                if not queue:
                    break
                path = queue.pop(0)
                face = Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC, reducing_gap=None)
                theta = rng.uniform(-angle, angle) if angle else 0.0
                eyes = eye_template * zoom
                if theta:
                    face = face.convert("RGBA").rotate(theta, Image.BICUBIC, expand=True)
                    # Image.rotate turns counter-clockwise about the centre (y down).
                    t = np.deg2rad(theta)
                    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
                    eyes = (eyes - side / 2) @ rot.T + np.array(face.size) / 2
                jx, jy = rng.integers(0, max(1, cell - face.size[0]) + 1), rng.integers(0, max(1, cell - face.size[1]) + 1)
                x, y = c * cell + int(jx), r * cell + int(jy)
                x, y = min(x, SCENE_SIZE[0] - face.size[0]), min(y, SCENE_SIZE[1] - face.size[1])
                paste(scene, face, x, y)
                truths.append(eyes + np.array([x, y]))
        k += 1
        yield scene, truths


def match(faces: list[Face], truths: list[np.ndarray], eye_px: float) -> tuple[int, int]:
    """(found, false detections): a truth is found by an unused detection with both eyes close."""
    used = set()
    found = 0
    for eyes in truths:
        for i, f in enumerate(faces):
            if i not in used and np.all(np.hypot(*(f.landmarks[:2] - eyes).T) <= 0.25 * eye_px):
                used.add(i)
                found += 1
                break
    return found, len(faces) - len(used)


def run_synthetic(detector, args) -> list[dict]:
    files = sorted((args.data / "utkface" / "test").glob("*.jpg"))[: args.faces]
    if not files:
        raise SystemExit(f"no faces under {args.data / 'utkface' / 'test'}")
    rows = []
    for eye_px in args.sizes:
        rng = np.random.default_rng(0)
        n = found = false = scenes = 0
        t0 = time.perf_counter()
        for scene, truths in synthetic_scenes(files, eye_px, args.angle, rng):
            f, fp = match(detector.detect(scene), truths, eye_px)
            n, found, false, scenes = n + len(truths), found + f, false + fp, scenes + 1
        rows.append({"source": "synthetic", "eye_px": eye_px, "faces": n, "found": found, "recall": found / n,
                     "false": false, "scenes": scenes, "seconds_per_scene": (time.perf_counter() - t0) / scenes})
    return rows


def run_photo(detector, path: Path, args) -> list[dict]:
    img = Image.open(path).convert("RGB")
    ref = [f for f in detector.detect(np.asarray(img)) if f.score >= args.reference_score]
    print(f"{path}: {len(ref)} reference faces at full size, eye distances "
          f"{sorted(round(f.eye_distance, 1) for f in ref)}", file=sys.stderr)
    rows = []
    for eye_px in args.sizes:
        # Shrink so that the median reference face has eye distance eye_px.
        s = eye_px / float(np.median([f.eye_distance for f in ref]))
        if s > 1:
            continue
        small = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.BICUBIC,
                           reducing_gap=None)
        sx, sy = small.width / img.width, small.height / img.height
        truths = [f.landmarks[:2] * [sx, sy] for f in ref]
        faces = detector.detect(np.asarray(small))
        found, false = match(faces, truths, eye_px)
        rows.append({"source": path.name, "eye_px": eye_px, "faces": len(ref), "found": found,
                     "recall": found / len(ref), "false": false, "scenes": 1})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=resolve_data_root(),
                    help="the data folder (default: $ARASFSR_DATA, else shared/data beside the checkout)")
    ap.add_argument("--faces", type=int, default=60, help="UTKFace test faces per size")
    ap.add_argument("--sizes", type=float, nargs="+", default=[7, 10, 14, 20, 28, 40, 80],
                    help="eye-centre distances in pixels")
    ap.add_argument("--angle", type=float, default=0.0, help="rotate pasted faces by up to +-ANGLE degrees")
    ap.add_argument("--photo", type=Path, nargs="*", default=[], help="real photos (reference = full-size detections)")
    ap.add_argument("--reference-score", type=float, default=0.95)
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--backend", default="mtcnn", choices=["mtcnn", "yuface"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    detector = make_detector(args.backend)
    rows = [] if args.no_synthetic else run_synthetic(detector, args)
    for p in args.photo:
        rows += run_photo(detector, p, args)
    print(f"detector: {args.backend}, rotation +-{args.angle:g} deg\n")
    print("| source | eye distance (px) | faces | found | recall | false detections |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {r['eye_px']:g} | {r['faces']} | {r['found']} | {r['recall']:.3f} | {r['false']} |")
    if args.json:
        write_result(args.json, {"backend": args.backend, "angle": args.angle, "rows": rows}, __spec__.name)


if __name__ == "__main__":
    main()
