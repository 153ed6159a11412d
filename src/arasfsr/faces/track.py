"""Faces followed through a video: detections matched to tracks, landmarks smoothed.

Per-frame detection jitters: MTCNN's landmarks move by a fraction of a pixel from one
noisy frame to the next, and a face is missed in one frame and found in the next. Pasted
per frame, that makes the restored faces shimmer and pop. A :class:`FaceTracker` keeps one
track per face:

- **matching**: each detection goes to the track whose predicted landmarks are nearest
  (Hungarian assignment on the centroid distance in eye distances, gated);
- **smoothing**: a One-Euro filter (Casiez et al., CHI 2012) on the five landmarks with
  one cutoff for all ten coordinates (the face's shape stays rigid): heavy smoothing while
  the face is still, little lag while it moves; a constant-velocity prediction carries the
  face between detections (``detect_every`` > 1) and through short misses;
- **a steady crop**: the aligned crop's side changes only when the face's size has
  changed by more than a few per cent, not with every sub-pixel wobble of the eye distance;
  a face that is about upright (its eyes level within ``grid_roll`` degrees) is cut
  axis-aligned at whole pixels, its crop moved only when the face has moved by more than
  ``grid_step`` pixels: the crop is then an exact copy of the frame's pixels and the model's
  output lands on the output's pixel grid at whole scale factors, with no resampling on the
  way in or out, and a still face is cut at the same place in every frame (docs/video.md);
- **fading**: a face found after the first frame fades in, and one lost for longer than
  ``keep_s`` fades out, instead of popping (``Face.blend``).

The crop is cut from the current frame and pasted back through the same transform, so a
smoothed transform never misplaces a face: it only frames the crop a little differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .align import TEMPLATE, natural_size
from .detect import Face


@dataclass
class TrackerSettings:
    """How faces are followed; the defaults were chosen on a clip of validation faces
    (``python -m tools.video_bench --split val``)."""

    min_cutoff: float = 1.0  # Hz: the smoothing of a still face (lower = steadier)
    beta: float = 4.0  # cutoff rise per eye distance per second of motion (higher = less lag)
    d_cutoff: float = 1.0  # Hz: the smoothing of the velocity estimate
    gate: float = 0.6  # a detection farther than this many eye distances from a track starts another
    keep_s: float = 0.4  # seconds a face is kept (predicted) without a detection
    fade_s: float = 0.2  # seconds over which a face fades in or out
    min_hits: int = 2  # detections before a face found after the first frame is shown
    size_step: float = 0.04  # relative change of the face's size that resizes its crop
    grid_roll: float = 8.0  # degrees: a face tilted less is cut axis-aligned at whole pixels
    grid_step: float = 0.75  # pixels a face moves before its axis-aligned crop follows


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class Track:
    id: int
    landmarks: np.ndarray  # smoothed (5, 2)
    velocity: np.ndarray  # smoothed (5, 2) per second
    time: float  # of the last update
    score: float
    hits: int = 1
    misses: float = 0.0  # seconds since the last detection
    blend: float = 0.0
    crop_side: int = 0
    shown: bool = False
    origin: np.ndarray | None = None  # whole-pixel top-left of the axis-aligned crop, or None: warped

    @property
    def roll(self) -> float:
        """Degrees the eye line is tilted."""
        dx, dy = self.landmarks[1] - self.landmarks[0]
        return float(np.degrees(np.arctan2(dy, dx)))

    @property
    def eye_distance(self) -> float:
        return max(1.0, float(np.hypot(*(self.landmarks[1] - self.landmarks[0]))))

    def predicted(self, t: float) -> np.ndarray:
        return self.landmarks + self.velocity * (t - self.time)


class FaceTracker:
    """Feed it each frame's detections (or ``None`` on frames without detection) and the
    frame's time in seconds; it returns the faces to paste, smoothed, with their crop side
    and blend weight. Times must increase."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.tracks: list[Track] = []
        self._next_id = 0
        self._started = False
        self._last_t: float | None = None
        self._shown_ids: set[int] = set()

    @property
    def faces_shown(self) -> int:
        """How many faces (tracks) have been pasted so far."""
        return len(self._shown_ids)

    def update(self, detections: list[Face] | None, t: float) -> list[Face]:
        s = self.settings
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 1e-6)
        self._last_t = t
        if detections is not None:
            self._match(detections, t)
            first = not self._started
            self._started = True
        else:
            first = False
        for tr in self.tracks:
            if tr.time < t:  # not measured this frame: predicted
                tr.landmarks = tr.predicted(t)
                tr.misses += t - tr.time
                tr.time = t
            if first or tr.hits >= s.min_hits:
                tr.shown = True
            if first:
                tr.blend = 1.0  # at the video's start there is nothing to pop from
            elif tr.shown and tr.misses <= s.keep_s:
                tr.blend = min(1.0, tr.blend + (dt / s.fade_s if s.fade_s > 0 else 1.0))
            else:
                tr.blend = max(0.0, tr.blend - (dt / s.fade_s if s.fade_s > 0 else 1.0))
            natural = natural_size(tr.landmarks)
            if abs(natural - tr.crop_side) > max(1.0, s.size_step * tr.crop_side):
                tr.crop_side, tr.origin = natural, None
            self._place(tr)
        self.tracks = [tr for tr in self.tracks if tr.blend > 0 or tr.misses <= s.keep_s]
        self._shown_ids.update(tr.id for tr in self.tracks if tr.blend > 0)
        return [Face(box=_box(tr.landmarks), landmarks=tr.landmarks.copy(), score=tr.score,
                     crop_side=tr.crop_side, blend=tr.blend, extra={"track": tr.id},
                     to_crop=None if tr.origin is None else np.array([[1.0, 0.0, -tr.origin[0]],
                                                                      [0.0, 1.0, -tr.origin[1]]]))
                for tr in self.tracks if tr.blend > 0]

    def _place(self, tr: Track) -> None:
        """The axis-aligned crop's whole-pixel origin, moved only past ``grid_step``; none
        (a warped crop) for a tilted face, with 2 degrees of hysteresis either way."""
        s = self.settings
        limit = s.grid_roll + (2.0 if tr.origin is not None else -2.0)
        if abs(tr.roll) > limit:
            tr.origin = None
            return
        wanted = tr.landmarks.mean(0) - TEMPLATE.mean(0) * tr.crop_side
        if tr.origin is None or np.abs(wanted - tr.origin).max() > s.grid_step:
            tr.origin = np.round(wanted)

    def _match(self, detections: list[Face], t: float) -> None:
        from scipy.optimize import linear_sum_assignment

        s = self.settings
        tracks = self.tracks
        matched_dets: set[int] = set()
        if tracks and detections:
            cost = np.empty((len(tracks), len(detections)))
            for i, tr in enumerate(tracks):
                centre = tr.predicted(t).mean(0)
                for j, det in enumerate(detections):
                    ratio = det.eye_distance / tr.eye_distance
                    far = np.hypot(*(det.landmarks.mean(0) - centre)) / tr.eye_distance
                    cost[i, j] = far if 0.6 < ratio < 1.66 else np.inf
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            for i, j in zip(rows, cols):
                if cost[i, j] <= s.gate:
                    self._correct(tracks[i], detections[j], t)
                    matched_dets.add(j)
        for j, det in enumerate(detections):
            if j not in matched_dets:
                marks = np.asarray(det.landmarks, np.float64)
                self.tracks.append(Track(self._next_id, marks.copy(), np.zeros_like(marks), t, det.score,
                                         crop_side=natural_size(marks)))
                self._next_id += 1

    def _correct(self, tr: Track, det: Face, t: float) -> None:
        """One-Euro step towards the detection. The velocity sets the cutoff and carries the
        face through frames without a detection; it is not added here, where its noise
        would undo the smoothing of a still face."""
        s = self.settings
        dt = t - tr.time
        measured = np.asarray(det.landmarks, np.float64)
        if dt <= 0:  # a second detection at the same time: keep the first
            return
        last = tr.landmarks if tr.misses == 0 else tr.predicted(t)
        a_d = _alpha(s.d_cutoff, dt)
        tr.velocity = tr.velocity + a_d * ((measured - last) / dt - tr.velocity)
        speed = float(np.hypot(*tr.velocity.mean(0))) / tr.eye_distance  # eye distances per second
        a = _alpha(s.min_cutoff + s.beta * speed, dt)
        tr.landmarks = last + a * (measured - last)
        tr.time, tr.score, tr.hits, tr.misses = t, det.score, tr.hits + 1, 0.0


def _box(landmarks: np.ndarray) -> np.ndarray:
    """A square box around a face from its landmarks (for display and JSON only)."""
    centre = landmarks.mean(0)
    half = 1.2 * float(np.hypot(*(landmarks[1] - landmarks[0])))
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
