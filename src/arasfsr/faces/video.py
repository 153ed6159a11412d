"""Faces in videos: each frame up-scaled as ``restore`` does a photo, the faces followed
through time (:mod:`.track`) so that they neither shimmer nor pop, the rest of the file
kept (:mod:`arasfsr.videoio`: timestamps, rotation, sound).

    from arasfsr import load_model
    from arasfsr.faces import load_detector
    from arasfsr.faces.video import restore_video
    restore_video("clip.mp4", "clip_x2.mp4", load_model("arasfsr"), scale=2, detector=load_detector())
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..api import Scale, Upscaler, output_size
from ..defaults import DEFAULT_MAX_PIXELS
from ..errors import InputError
from ..videoio import VideoInfo, even_size, probe_video, transcode
from .detect import Detector
from .restore import restore
from .track import FaceTracker, TrackerSettings

DEFAULT_DETECT_EVERY = 1  # detect in every frame: the tracker then only smooths and bridges misses


@dataclass
class VideoResult:
    path: Path
    frames: int
    size: tuple[int, int]  # (w, h) as displayed
    faces: int  # faces followed (tracks shown at some point)
    seconds: float
    copied: list[str]  # streams copied as they are
    reencoded: list[str]
    dropped: list[str]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def video_output_size(info: VideoInfo, scale: Scale | None = None, size: tuple[int, int] | None = None,
                      max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The output's displayed (w, h): a ``scale`` rounds each side up to an even number
    (4:2:0 colour needs it); an exact ``size`` must be even."""
    w, h = output_size(info.size, scale, size, max_pixels)
    if size is not None and (w % 2 or h % 2):
        raise InputError(f"size {w}x{h}: a video's width and height must be even numbers")
    return even_size((w, h))


def restore_video(src: str | Path, dst: str | Path, face_model: Upscaler, *, scale: Scale | None = None,
                  size: tuple[int, int] | None = None, detector: Detector | None = None,
                  background: Upscaler | None = None, detect_every: int = DEFAULT_DETECT_EVERY,
                  tracking: TrackerSettings | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  chunk_size: int | None = None, crf: int | None = None, overwrite: bool = False,
                  progress: bool = True, note: Callable[[str], None] | None = None) -> VideoResult:
    """Up-scale the video ``src`` into ``dst`` (.mp4, .mkv, .mov, .webm) by ``scale`` or to
    ``size`` = (w, h) as displayed; the faces by ``face_model``, the rest by bicubic (or
    ``background``).

    Faces are found by ``detector`` every ``detect_every`` frames and followed in between
    (``tracking``: :class:`~arasfsr.faces.track.TrackerSettings`). The frame count, each
    frame's timestamp, the rotation and the other streams are kept (see
    :mod:`arasfsr.videoio`); the file appears only when complete. ``note`` receives
    one-line notes; ``progress`` shows a bar on stderr.
    """
    if detector is None:
        raise InputError("restore_video needs a face detector")
    if not (isinstance(detect_every, int) and detect_every >= 1):
        raise InputError(f"detect_every must be a whole number of at least 1, got {detect_every!r}")
    info = probe_video(src)
    out_size = video_output_size(info, scale, size, max_pixels)
    tracker = FaceTracker(tracking)
    count = 0

    def process(rgb: np.ndarray, t: float) -> np.ndarray:
        nonlocal count
        found = detector.detect(rgb) if count % detect_every == 0 else None
        count += 1
        faces = tracker.update(found, t)
        res = restore(Image.fromarray(rgb), face_model, size=out_size, faces=faces, background=background,
                      max_pixels=max_pixels, chunk_size=chunk_size)
        return np.asarray(res.image)

    done = transcode(src, dst, process, out_size, crf=crf, overwrite=overwrite, progress=progress, note=note,
                     info=info)
    return VideoResult(done.path, done.frames, done.size, tracker.faces_shown, done.seconds, done.copied,
                       done.reencoded, done.dropped)
