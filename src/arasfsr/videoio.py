"""Reading and writing videos with PyAV (optional extra: ``pip install 'arasfsr[video]'``).

PyAV's wheels carry FFmpeg's libraries, so no ``ffmpeg`` program is needed. A video is
streamed: one frame is decoded, handed to a function in its display orientation, and its
result encoded before the next is decoded, so memory does not grow with the clip's length.

What is kept: every frame with its own timestamp (a variable frame rate too), the frame
rate, the rotation of the display (the picture is processed upright and written back in the
input's coded orientation with the same rotation), the colour tags, the container's and
streams' titles and languages. Audio, subtitle and other streams are copied packet for
packet where the output container can hold their codec; audio that it cannot hold is
re-encoded (e.g. AAC into WebM becomes Opus), other streams that it cannot hold are left
out, each with a note. The output is written to a temporary file and renamed when complete
(:func:`arasfsr.atomic.atomic_write`): an error, Ctrl-C or SIGTERM leaves no partial file.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .errors import ArasfsrError, InputError, one_line

if TYPE_CHECKING:
    import av

INSTALL_HINT = "video needs the video extra (PyAV): pip install 'arasfsr[video]'"

# Output container by suffix, and its video encoder (with 4:2:0 colour, as players expect).
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
VIDEO_ENCODERS = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9"}
AUDIO_ENCODERS = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
# Constant-quality settings: visually lossless for H.264 at 18; VP9's scale differs.
DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 30}
PIXEL_FORMAT = "yuv420p"
# Container formats that are single pictures, not videos.
_IMAGE_FORMATS = ("image2", "apng")
_KEPT_TAGS = ("language", "title", "handler_name", "creation_time", "comment", "description", "copyright")


class VideoUnavailable(ArasfsrError):
    """PyAV (the optional video extra) is not installed."""


def require_av() -> Any:
    """The ``av`` module, or :class:`VideoUnavailable` with the install command."""
    try:
        import av
    except ImportError:
        raise VideoUnavailable(INSTALL_HINT) from None
    return av


@dataclass
class VideoInfo:
    """What a video's header and first frame tell."""

    path: Path
    size: tuple[int, int]  # (w, h) as displayed: the rotation applied
    rotation: int  # degrees counter-clockwise from the coded picture to the display (0, 90, 180, -90)
    frames: int | None  # from the header (may be missing or approximate)
    rate: Fraction | None  # frames per second (the average where it varies)
    duration: float | None  # seconds
    codec: str
    streams: list[str] = field(default_factory=list)  # the other streams: "audio aac", ...


@dataclass
class TranscodeResult:
    path: Path
    frames: int
    size: tuple[int, int]  # (w, h) as displayed
    copied: list[str] = field(default_factory=list)  # streams copied without re-encoding
    reencoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _describe(stream: Any) -> str:
    name = stream.codec_context.name if stream.codec_context is not None else "unknown"
    return f"{stream.type} {name} (stream {stream.index})"


@contextmanager
def open_video(path: str | Path) -> Iterator[Any]:
    """The input container, its problems as one-line :class:`InputError` s."""
    from .imageio import check_input_file

    av = require_av()
    path = check_input_file(path, "a video")
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a video file, or damaged ({_ffmpeg_message(exc)})") from None
    try:
        name = container.format.name
        if name in _IMAGE_FORMATS or name.endswith("_pipe"):
            raise InputError(f"{path}: is a picture, not a video; `arasfsr restore` takes photos")
        yield container
    finally:
        container.close()


def _ffmpeg_message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or one_line(exc)
    return str(text).rstrip(".")


def main_video_stream(container: Any, path: Path) -> Any:
    """The first video stream that is not a cover picture."""
    for stream in container.streams.video:
        if not stream.disposition & 1024:  # AV_DISPOSITION_ATTACHED_PIC
            return stream
    others = ", ".join(sorted({s.type for s in container.streams})) or "no streams at all"
    raise InputError(f"{path}: has no video stream ({others})")


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path``, find its video stream and decode its first frame (for the rotation and
    to refuse a video without frames); nothing else is decoded."""
    path = Path(path)
    with open_video(path) as container:
        stream = main_video_stream(container, path)
        first = None
        for frame in _decoded(container, stream, path):
            first = frame
            break
        if first is None:
            raise InputError(f"{path}: its video stream has no frames")
        rotation = _rotation(first)
        w, h = first.width, first.height
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frames = stream.frames or (round(duration * rate) if duration and rate else None)
        return VideoInfo(path, (h, w) if rotation % 180 else (w, h), rotation, frames or None,
                         Fraction(rate) if rate else None, duration, stream.codec_context.name,
                         [_describe(s) for s in container.streams if s is not stream])


def _rotation(frame: Any) -> int:
    """The frame's display rotation rounded to a quarter turn (others are not supported)."""
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        return 0
    quarter = int(round(degrees / 90.0)) % 4
    return {0: 0, 1: 90, 2: 180, 3: -90}[quarter]


def _decoded(container: Any, stream: Any, path: Path) -> Iterator[Any]:
    """``stream``'s frames; a read or decode error is an InputError naming where it happened."""
    av = require_av()
    n = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = packet.decode()
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: damaged video: {_where(n, None)} cannot be decoded "
                             f"({_ffmpeg_message(exc)})") from None
        for frame in frames:
            n += 1
            yield frame


def _where(n: int, t: float | None) -> str:
    return f"frame {n + 1}" + (f" (at {t:.3f} s)" if t is not None else "")


def check_video_output(path: str | Path, src: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output that cannot be written, before any work: an unknown suffix, a
    folder, an existing file (without ``overwrite``), the input itself, a missing folder."""
    from .imageio import refuse_existing

    path, src = Path(path), Path(src)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as {path / 'out.mp4'}")
    if path.suffix.lower() not in CONTAINERS:
        raise InputError(f"{path}: unknown video format; use one of {', '.join(sorted(CONTAINERS))}")
    if path.exists() and src.exists() and path.resolve() == src.resolve():
        raise InputError(f"{path}: output would replace its input")
    refuse_existing(path, overwrite)
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "output folder does not exist"
        raise InputError(f"{path.parent}: {what}")
    return path


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` with each side made even (4:2:0 colour needs it), rounding up."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


FrameFunction = Callable[[np.ndarray, float], np.ndarray]


def transcode(src: str | Path, dst: str | Path, process: FrameFunction, out_size: tuple[int, int], *,
              crf: int | None = None, overwrite: bool = False, progress: bool = True,
              note: Callable[[str], None] | None = None, info: VideoInfo | None = None) -> TranscodeResult:
    """Write ``dst`` from ``src`` with each frame replaced by ``process(rgb, t)``.

    ``rgb`` is the frame as displayed (HxWx3 uint8, rotation applied), ``t`` its time in
    seconds; ``process`` returns the output frame as displayed, ``out_size`` = (w, h), both
    even. Everything else is kept as the module says. ``crf``: the encoder's constant
    quality (default :data:`DEFAULT_CRF`). ``note`` receives one-line notes (streams left
    out or re-encoded). A progress bar on stderr shows frames
    and the time left when ``progress``.
    """
    from .atomic import TempFileError, atomic_write

    src, dst = Path(src), Path(dst)
    require_av()
    check_video_output(dst, src, overwrite)
    if out_size[0] % 2 or out_size[1] % 2:
        raise InputError(f"output {out_size[0]}x{out_size[1]}: video needs even width and height")
    info = info or probe_video(src)
    result = TranscodeResult(dst, 0, out_size)
    start = time.perf_counter()
    try:
        atomic_write(dst, lambda tmp: _transcode(src, tmp, dst, process, out_size, crf, progress, info, result))
    except TempFileError as exc:
        raise InputError(f"{dst.parent}: cannot write into this folder ({exc.strerror or one_line(exc)})") from None
    result.seconds = time.perf_counter() - start
    say = note or (lambda text: None)
    for what in result.reencoded:
        say(f"{what}: re-encoded, the {dst.suffix} container cannot hold it as it is")
    for what in result.dropped:
        say(f"{what}: left out, the {dst.suffix} container cannot hold it")
    return result


class _Output:
    """The output container: the video encoder and a plan for every other input stream."""

    def __init__(self, tmp: str, fmt: str, inp: Any, vin: Any, out_size: tuple[int, int], rotation: int,
                 crf: int | None, copy: bool) -> None:
        av = require_av()
        self.container = av.open(tmp, "w", format=fmt, options={"movflags": "+faststart"}
                                 if fmt in ("mp4", "mov") else {})
        out = self.container
        out.metadata.update({k: v for k, v in inp.metadata.items() if k in _KEPT_TAGS})
        encoder = VIDEO_ENCODERS[fmt]
        quality = DEFAULT_CRF[encoder] if crf is None else crf
        options = {"crf": str(quality)}
        options.update({"preset": "medium"} if encoder == "libx264" else
                       {"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        self.video = out.add_stream(encoder, rate=rate, options=options)
        w, h = out_size
        self.video.width, self.video.height = (h, w) if rotation % 180 else (w, h)
        self.video.pix_fmt = PIXEL_FORMAT
        self.video.time_base = vin.time_base
        self.video.codec_context.time_base = vin.time_base
        cc, icc = self.video.codec_context, vin.codec_context
        for tag in ("color_primaries", "color_trc", "colorspace", "color_range"):
            try:
                setattr(cc, tag, getattr(icc, tag))
            except (AttributeError, ValueError, TypeError):
                pass
        _copy_tags(vin, self.video)
        if rotation:
            self.video.set_display_rotation(rotation)
        self.copied: dict[int, Any] = {}
        self.encoded: dict[int, tuple[Any, Any]] = {}  # input index -> (output stream, resampler)
        self.copied_names, self.reencoded, self.dropped = [], [], []
        supported = out.supported_codecs
        for s in inp.streams:
            if s is vin:
                continue
            name = s.codec_context.name if s.codec_context is not None else None
            if copy and name in supported:
                try:
                    o = out.add_stream_from_template(s)
                    _copy_tags(s, o)
                    self.copied[s.index] = o
                    self.copied_names.append(_describe(s))
                    continue
                except (ValueError, av.error.FFmpegError):
                    pass
            if s.type == "audio" and s.codec_context is not None:
                self.encoded[s.index] = self._audio_encoder(s, AUDIO_ENCODERS[fmt])
                self.reencoded.append(_describe(s))
            else:
                self.dropped.append(_describe(s))
        out.start_encoding()  # the header: a stream the container refuses fails here, not midway

    def _audio_encoder(self, s: Any, codec: str) -> tuple[Any, Any]:
        av = require_av()
        rates = av.Codec(codec, "w").audio_rates or ()
        rate = s.rate if not rates or s.rate in rates else max(rates)
        o = self.container.add_stream(codec, rate=rate)
        o.layout = s.layout if s.layout.nb_channels <= 2 else "stereo"
        _copy_tags(s, o)
        fmt = av.Codec(codec, "w").audio_formats[0].name
        return o, av.AudioResampler(format=fmt, layout=o.layout, rate=rate)

    def mux(self, packets: Any) -> None:
        for p in packets:
            self.container.mux(p)

    def close(self) -> None:
        self.container.close()


def _copy_tags(src: Any, dst: Any) -> None:
    try:
        dst.metadata.update({k: v for k, v in src.metadata.items() if k in _KEPT_TAGS})
    except (AttributeError, TypeError, ValueError):
        pass


def _transcode(src: Path, tmp: str, dst: Path, process: FrameFunction, out_size: tuple[int, int],
               crf: int | None, progress: bool, info: VideoInfo, result: TranscodeResult) -> None:
    from tqdm import tqdm

    av = require_av()
    fmt = CONTAINERS[dst.suffix.lower()]
    with open_video(src) as inp:
        vin = main_video_stream(inp, src)
        vin.thread_type = "AUTO"
        tb = vin.time_base
        out = _open_output(tmp, dst, fmt, inp, vin, out_size, info.rotation, crf)
        result.copied, result.reencoded, result.dropped = out.copied_names, out.reencoded, out.dropped
        k = info.rotation // 90
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        step = max(1, round(1 / (rate * tb))) if tb else 1
        last_pts = None
        bar = tqdm(total=info.frames, desc="video", unit="frame", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        finished = False
        try:
            for packet in _demuxed(inp, src, lambda: result.frames):
                index = packet.stream.index
                if packet.stream is vin:
                    for frame in _decode(packet, src, result.frames, tb):
                        pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + step)
                        if last_pts is not None and pts <= last_pts:  # encoders refuse repeated times
                            pts = last_pts + 1
                        last_pts = pts
                        if frame.is_corrupt:  # the decoder patched it over: refused, as damaged images are
                            raise InputError(f"{src}: damaged video: {_where(result.frames, float(pts * tb))} "
                                             "is corrupt (the decoder could only patch it over)")
                        t = float(pts * tb) if tb else result.frames / float(rate)
                        rgb = frame.to_ndarray(format="rgb24")
                        shown = np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
                        done = process(shown, t)
                        if done.shape != (out_size[1], out_size[0], 3) or done.dtype != np.uint8:
                            raise ValueError(f"the frame function returned {done.shape} {done.dtype}, "
                                             f"not ({out_size[1]}, {out_size[0]}, 3) uint8")
                        coded = np.ascontiguousarray(np.rot90(done, -k)) if k else done
                        picture = av.VideoFrame.from_ndarray(coded, format="rgb24")
                        picture = picture.reformat(format=PIXEL_FORMAT, dst_colorspace=frame.colorspace,
                                                   dst_color_range=frame.color_range)
                        picture.pts, picture.time_base = pts, tb
                        _write(out, out.video.encode(picture), dst)
                        result.frames += 1
                        bar.update(1)
                elif index in out.copied:
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = out.copied[index]
                    _write(out, [packet], dst)
                elif index in out.encoded:
                    stream, resampler = out.encoded[index]
                    for frame in _decode(packet, src, None, packet.stream.time_base):
                        for piece in resampler.resample(frame):
                            _write(out, stream.encode(piece), dst)
            if result.frames == 0:
                raise InputError(f"{src}: its video stream has no frames")
            _write(out, out.video.encode(None), dst)
            for stream, resampler in out.encoded.values():
                for piece in resampler.resample(None):
                    _write(out, stream.encode(piece), dst)
                _write(out, stream.encode(None), dst)
            finished = True
        finally:
            bar.close()
            try:
                out.close()  # the trailer; after a failure the file is removed anyway
            except av.error.FFmpegError as exc:
                if finished:
                    raise InputError(f"{dst}: cannot write ({_ffmpeg_message(exc)})") from None


def _open_output(tmp: str, dst: Path, fmt: str, inp: Any, vin: Any, out_size: tuple[int, int], rotation: int,
                 crf: int | None) -> _Output:
    """The output with streams copied; if the container refuses one at its header, again with
    the audio re-encoded and the rest left out."""
    av = require_av()
    try:
        return _Output(tmp, fmt, inp, vin, out_size, rotation, crf, copy=True)
    except av.error.FFmpegError:
        pass
    try:
        return _Output(tmp, fmt, inp, vin, out_size, rotation, crf, copy=False)
    except av.error.FFmpegError as exc:
        raise InputError(f"{dst}: cannot write this video ({_ffmpeg_message(exc)})") from None


def _demuxed(inp: Any, src: Path, frames_done: Callable[[], int]) -> Iterator[Any]:
    av = require_av()
    packets = inp.demux()
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise InputError(f"{src}: damaged video: cannot read past {_where(frames_done(), None)} "
                             f"({_ffmpeg_message(exc)})") from None
        yield packet


def _decode(packet: Any, src: Path, frames_done: int | None, tb: Fraction | None) -> list[Any]:
    av = require_av()
    try:
        return packet.decode()
    except av.error.FFmpegError as exc:
        t = float(packet.pts * tb) if packet.pts is not None and tb else None
        where = _where(frames_done, t) if frames_done is not None else (
            f"{packet.stream.type} at {t:.3f} s" if t is not None else f"a {packet.stream.type} packet")
        raise InputError(f"{src}: damaged video: {where} cannot be decoded ({_ffmpeg_message(exc)})") from None


def _write(out: _Output, packets: Any, dst: Path) -> None:
    av = require_av()
    try:
        out.mux(packets)
    except av.error.FFmpegError as exc:
        raise InputError(f"{dst}: cannot write ({_ffmpeg_message(exc)})") from None


def read_frames(path: str | Path) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame of ``path`` as displayed (HxWx3 uint8, rotation applied) with its time in
    seconds, one at a time."""
    path = Path(path)
    info = probe_video(path)
    k = info.rotation // 90
    with open_video(path) as container:
        stream = main_video_stream(container, path)
        tb = stream.time_base
        for frame in _decoded(container, stream, path):
            rgb = frame.to_ndarray(format="rgb24")
            t = float(frame.pts * tb) if frame.pts is not None and tb else math.nan
            yield (np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb), t
