"""The README's uncertainty picture: LR, SR, HR, |SR - HR| and the map, on public-domain faces.

    python -m tools.uncertainty.readme_figure --out docs/img/uncertainty_faces.png

Faces: the astronaut (NASA, scikit-image's ``data.astronaut``) and Grace Hopper (US Navy,
matplotlib's sample data), found by the face detector and aligned to 128x128 as the test
faces are; each row shrinks the face with the evaluation's degradation (``make_pair``,
bicubic), super-resolves it with the default model and ``uncertainty=True``. |error| and
the map share one colour scale (grey levels, 0 to ``HEAT_MAX``). UTKFace faces stay out of
the repository, so the test faces are not shown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from arasfsr import load_model
from arasfsr.faces.align import aligned_crop
from arasfsr.faces.detect import load_detector
from arasfsr.protocols import TestRow, make_pair
from arasfsr.uncertainty import HEAT_MAX, COLOUR_MAP

HR = 128


def public_domain_faces() -> dict[str, Image.Image]:
    import matplotlib
    from skimage import data

    hopper = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    photos = {"astronaut": Image.fromarray(data.astronaut()), "Grace Hopper": hopper}
    detector = load_detector()
    faces = {}
    for name, photo in photos.items():
        arr = np.asarray(photo)
        face = max(detector.detect(arr), key=lambda f: f.eye_distance)
        faces[name] = Image.fromarray(aligned_crop(arr, face.landmarks, HR)[1])
    return faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lr", default="16,32", help="LR sides (HR is 128)")
    args = ap.parse_args()
    from matplotlib.figure import Figure

    up = load_model("arasfsr")
    rows = [(name, face, int(lr)) for lr in args.lr.split(",") for name, face in public_domain_faces().items()]
    fig = Figure(figsize=(10.2, 2.2 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), 5)
    for r, (name, face, lr_side) in enumerate(rows):
        lr, hr = make_pair(face, TestRow("public", lr_side, HR))
        sr, u = up.upscale(lr, size=(HR, HR), uncertainty=True)
        err = np.abs(sr.astype(np.float32) - hr).mean(axis=2)
        panels = [(Image.fromarray(lr).resize((HR, HR), Image.NEAREST), f"LR {lr_side}×{lr_side}"),
                  (sr, f"SR ×{HR // lr_side}"), (hr, "HR (truth)"),
                  (err, f"|SR − HR|, mean {err.mean():.1f}"), (u, f"uncertainty, mean {u.mean():.1f}")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            shown = ax.imshow(img, cmap=COLOUR_MAP, vmin=0, vmax=HEAT_MAX) if c >= 3 else ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.9, bottom=0.02, top=0.95, wspace=0.08, hspace=0.22)
    bar = fig.colorbar(shown, cax=fig.add_axes([0.915, 0.2, 0.015, 0.6]), ticks=[0, 6, 12, 18, 24])
    bar.set_label("grey levels of 255 (error: actual; uncertainty: expected)", fontsize=8)
    bar.ax.set_yticklabels(["0", "6", "12", "18", "24+"])
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
