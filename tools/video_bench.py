"""Flicker, face quality, what is kept, memory and speed of ``arasfsr video`` on a clip made
from real faces with its ground truth.

The clip: five faces of ``utkface/SPLIT`` (sides 96 to 184 px) pasted with a feathered edge
into a 1376x960 scene (scikit-image's coffee picture), filmed by a 1280x960 camera that
stands still for ``--still`` frames and then pans 3 px a frame, turning back at the scene's
edge. Each camera frame is the ground truth; the input is that frame shrunk to 640x480
(anti-aliased bicubic) with fresh Gaussian sensor noise (sigma ``--noise`` grey levels) in
every frame, encoded as H.264 (CRF 12) at 25 frames/s with a stereo AAC track (a 440-Hz
tone left, a 200-2000 Hz chirp right).

Measured on the decoded outputs (all written by the same encoder at the same quality):
- flicker: the mean |frame t - frame t-1| over the face pixels (an ellipse inside each
  pasted face) across the still part, RGB, grey levels; and as a ratio to bicubic's;
- face PSNR: Y (BT.601, as the project's metrics), over the face pixels of every frame;
- kept: the frame count, every timestamp, the audio samples (decoded, compared);
- peak resident memory of the command on the clip and on one 4x as long;
- frames per second through the CLI and through the Python API (torch imported first).

    python -m tools.video_bench --split val --what quality          # tuning (never on test)
    /work/bin/quiet python -m tools.video_bench --split test --what all --out benchmarks/results/video/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from tools.provenance import write_result

SCENE_SIZE = (1376, 960)  # (w, h) of the world the camera pans over
CAMERA = (1280, 960)  # ground truth frame
FACTOR = 2  # the input is the camera frame shrunk by this
FACE_SIDES = (96, 120, 140, 160, 184)
FACE_SPOTS = ((80, 120), (330, 430), (600, 150), (880, 520), (1120, 200))  # top-left corners in the scene
PAN_PX = 3  # per frame, ground-truth pixels
FPS = 25
AUDIO_RATE = 48000


def face_files(data: Path, split: str, n: int, seed: int) -> list[Path]:
    files = sorted((data / "utkface" / split).glob("*.jpg"))
    if len(files) < n:
        raise SystemExit(f"{data / 'utkface' / split}: fewer than {n} faces")
    rng = np.random.default_rng(seed)
    return [files[i] for i in rng.choice(len(files), n, replace=False)]


@dataclass
class Scene:
    world: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool: face pixels
    still: int
    frames: int
    noise: float
    seed: int

    def offset(self, t: int) -> int:
        """The camera's x in the scene at frame t: still, then a pan back and forth."""
        if t < self.still:
            return 0
        span = SCENE_SIZE[0] - CAMERA[0]
        x = (t - self.still + 1) * PAN_PX
        period = 2 * span
        x %= period
        return x if x <= span else period - x

    def truth(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.offset(t)
        return self.world[:, x:x + CAMERA[0]], self.mask[:, x:x + CAMERA[0]]

    def low_res(self, t: int) -> np.ndarray:
        hr, _ = self.truth(t)
        lr = np.asarray(Image.fromarray(hr).resize((CAMERA[0] // FACTOR, CAMERA[1] // FACTOR), Image.BICUBIC),
                        np.float32)
        rng = np.random.default_rng([self.seed, t])
        return np.clip(np.round(lr + rng.normal(0, self.noise, lr.shape)), 0, 255).astype(np.uint8)


def make_scene(data: Path, split: str, still: int, frames: int, noise: float, seed: int = 0) -> Scene:
    from skimage import data as samples

    world = np.asarray(Image.fromarray(samples.coffee()).resize(SCENE_SIZE, Image.BICUBIC)).copy()
    mask = np.zeros(world.shape[:2], bool)
    for path, side, (x, y) in zip(face_files(data, split, len(FACE_SIDES), seed), FACE_SIDES, FACE_SPOTS):
        face = np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC, reducing_gap=None),
                          np.float64)
        yy, xx = np.mgrid[0:side, 0:side] + 0.5
        edge = np.minimum.reduce([xx, side - xx, yy, side - yy])
        alpha = np.clip(edge / max(1.0, 0.08 * side), 0, 1)[..., None]
        region = world[y:y + side, x:x + side].astype(np.float64)
        world[y:y + side, x:x + side] = np.round(alpha * face + (1 - alpha) * region).astype(np.uint8)
        inside = ((xx - side / 2) / (0.40 * side)) ** 2 + ((yy - side / 2) / (0.47 * side)) ** 2 <= 1
        mask[y:y + side, x:x + side] |= inside
    return Scene(world, mask, still, frames, noise, seed)


def write_clip(scene: Scene, path: Path) -> None:
    """The input clip: the noisy low-resolution frames as H.264 and a stereo AAC track."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS, options={"crf": "12", "preset": "medium"})
        v.width, v.height, v.pix_fmt = CAMERA[0] // FACTOR, CAMERA[1] // FACTOR, "yuv420p"
        a = out.add_stream("aac", rate=AUDIO_RATE)
        a.layout = "stereo"
        for t in range(scene.frames):
            frame = av.VideoFrame.from_ndarray(scene.low_res(t), format="rgb24")
            frame.pts = t
            frame.time_base = Fraction(1, FPS)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        samples = audio_signal(scene.frames / FPS)
        for k in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, k:k + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = AUDIO_RATE, k
            out.mux(a.encode(frame))
        out.mux(a.encode(None))


def audio_signal(seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * AUDIO_RATE))) / AUDIO_RATE
    chirp = np.sin(2 * np.pi * (200 * t + (2000 - 200) / (2 * max(seconds, 1e-3)) * t ** 2))
    return (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), chirp])).astype(np.float32)


# ---- what a file holds -----------------------------------------------------------------

def frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def audio_samples(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([f.to_ndarray().reshape(f.layout.nb_channels, -1) for f in c.decode(audio=0)], axis=1)


def audio_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def measure(scene: Scene, path: Path) -> dict:
    """Flicker over the still part and face PSNR (Y) against the ground truth."""
    from arasfsr.evaluation.metrics import rgb_to_y
    from arasfsr.videoio import read_frames

    diffs, psnrs, prev = [], [], None
    for t, (frame, _) in enumerate(read_frames(path)):
        hr, mask = scene.truth(t)
        if t < scene.still:
            if prev is not None:
                diffs.append(float(np.abs(frame.astype(np.float32) - prev)[mask].mean()))
            prev = frame.astype(np.float32)
        err = rgb_to_y(frame).astype(np.float64) - rgb_to_y(np.ascontiguousarray(hr)).astype(np.float64)
        mse = float((err[mask] ** 2).mean())
        psnrs.append(10 * np.log10(255 ** 2 / max(mse, 1e-12)))
    return {"flicker": float(np.mean(diffs)), "face_psnr_y": float(np.mean(psnrs)),
            "face_psnr_y_still": float(np.mean(psnrs[:scene.still])),
            "face_psnr_y_moving": float(np.mean(psnrs[scene.still:])) if len(psnrs) > scene.still else None}


def kept(src: Path, out: Path) -> dict:
    a, b = frame_times(src), frame_times(out)
    sa, sb = audio_samples(src), audio_samples(out)
    n = min(sa.shape[-1], sb.shape[-1])
    corr = float(np.corrcoef(sa[:, :n].ravel(), sb[:, :n].ravel())[0, 1]) if n else None
    return {"frames_in": len(a), "frames_out": len(b), "timestamps_equal": a == b,
            "max_timestamp_error_s": max((abs(x - y) for x, y in zip(a, b)), default=None),
            "audio_packets_identical": audio_packets(src) == audio_packets(out),
            "audio_samples_in": int(sa.shape[-1]), "audio_samples_out": int(sb.shape[-1]),
            "audio_correlation": corr}


def tracking_check(scene: Scene, path: Path, settings: dict, detect_every: int) -> dict:
    """Detection and tracking alone (no model, quick): how still the tracked faces stay over
    the still part, how closely they follow the pan, how often a crop moves, how many faces
    are pasted in each frame (raw detections: how many the detector found)."""
    from arasfsr.faces import load_detector
    from arasfsr.faces.track import FaceTracker, TrackerSettings
    from arasfsr.videoio import read_frames

    detector, tracker = load_detector(), FaceTracker(TrackerSettings(**settings))
    raw_counts, counts, centres, origins, raw_centres = [], [], [], [], []
    for k, (frame, t) in enumerate(read_frames(path)):
        found = detector.detect(frame) if k % detect_every == 0 else None
        faces = tracker.update(found, t)
        raw_counts.append(len(found) if found is not None else None)
        counts.append(len(faces))
        centres.append({f.extra["track"]: f.landmarks.mean(0) for f in faces})
        origins.append({f.extra["track"]: None if f.to_crop is None else tuple(f.to_crop[:, 2]) for f in faces})
        raw_centres.append([f.landmarks.mean(0) for f in (found or [])])
    ids = sorted(set().union(*centres[:scene.still]))
    still_moves = [float(np.hypot(*(centres[t][i] - centres[t - 1][i]))) for t in range(1, scene.still)
                   for i in ids if i in centres[t] and i in centres[t - 1]]
    crop_moves = sum(origins[t][i] != origins[t - 1][i] for t in range(1, scene.still) for i in ids
                     if i in origins[t] and i in origins[t - 1])
    pan_errors = []
    for i in ids:  # truth: the face's mean still position, shifted with the camera
        base = np.mean([centres[t][i] for t in range(scene.still) if i in centres[t]], axis=0)
        for t in range(scene.still, len(centres)):
            if i in centres[t]:
                truth = base - np.array([scene.offset(t) / FACTOR, 0.0])
                pan_errors.append(float(np.hypot(*(centres[t][i] - truth))))
    return {"faces_pasted_per_frame": counts, "faces_detected_per_frame": raw_counts,
            "still_landmark_motion_px": float(np.mean(still_moves)) if still_moves else None,
            "still_crop_moves": int(crop_moves), "pan_error_px": float(np.mean(pan_errors)) if pan_errors else None,
            "pan_error_max_px": float(np.max(pan_errors)) if pan_errors else None}


# ---- the ways of making the output -------------------------------------------------------

def run_variant(name: str, src: Path, dst: Path, model_name: str, detect_every: int, tracking: dict | None) -> float:
    """Write ``dst`` from ``src`` at x2 by one method; returns the seconds taken."""
    from arasfsr import load_model
    from arasfsr.faces import load_detector, restore
    from arasfsr.faces.track import TrackerSettings
    from arasfsr.faces.video import restore_video
    from arasfsr.videoio import transcode

    size = CAMERA
    start = time.perf_counter()
    if name == "bicubic":
        bicubic = load_model("bicubic")
        transcode(src, dst, lambda rgb, t: np.asarray(bicubic.upscale(rgb, size=size)), size, overwrite=True,
                  progress=False)
    elif name == "per-frame":  # `arasfsr restore` on each frame: detection and alignment per frame
        model, detector = load_model(model_name), load_detector()
        transcode(src, dst, lambda rgb, t: np.asarray(restore(Image.fromarray(rgb), model, size=size,
                                                              detector=detector).image), size,
                  overwrite=True, progress=False)
    elif name == "video":
        restore_video(src, dst, load_model(model_name), size=size, detector=load_detector(),
                      detect_every=detect_every, tracking=TrackerSettings(**(tracking or {})), overwrite=True,
                      progress=False)
    else:
        raise ValueError(name)
    return time.perf_counter() - start


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit status) of a command run as a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-400:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode


def cli(src: Path, dst: Path, model: str, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "arasfsr.cli", "video", str(src), "-o", str(dst), "--size",
            f"{CAMERA[0]}x{CAMERA[1]}", "--model", model, "--overwrite", *extra]


def with_busy_core(fn):
    """``fn()`` while another process keeps one core busy."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        return fn()
    finally:
        busy.kill()
        busy.wait()


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "unknown")
    import av
    import torch

    # commit, machine, command and date come first, from tools.provenance
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "av": av.__version__, "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def picture(folder: Path, clip: Path, frame: int, box: tuple[int, int, int, int], out: Path,
            scene: Scene | None = None) -> Path:
    """One frame side by side: the input (nearest), bicubic, ``arasfsr video`` (and the
    ground truth), cropped to ``box`` (output pixels), from a --keep folder."""
    from arasfsr.demo import side_by_side
    from arasfsr.videoio import read_frames

    def nth(path: Path) -> Image.Image:
        for k, (rgb, _) in enumerate(read_frames(path)):
            if k == frame:
                return Image.fromarray(rgb)
        raise SystemExit(f"{path}: fewer than {frame + 1} frames")

    columns = [("input (nearest)", nth(clip).resize(CAMERA, Image.NEAREST)), ("bicubic", nth(folder / "bicubic.mp4")),
               ("per-frame restore", nth(folder / "per-frame.mp4")), ("arasfsr video", nth(folder / "video.mp4"))]
    if scene is not None:
        columns.append(("ground truth", Image.fromarray(np.ascontiguousarray(scene.truth(frame)[0]))))
    columns = [(label, im.crop(box)) for label, im in columns]
    side_by_side(columns, height=max(box[3] - box[1], 400)).save(out)  # small boxes enlarged (nearest)
    return out


def main(argv: list[str] | None = None) -> None:
    import torch  # noqa: F401  (first, as users of the API do)

    from arasfsr.data import resolve_data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="the shared data folder (default: ../shared/data)")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--still", type=int, default=24)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--memory-frames", type=int, default=None, help="frames of the shorter memory clip (default --frames)")
    p.add_argument("--noise", type=float, default=3.0)
    p.add_argument("--model", default=None, help="face model (default: the commands' default)")
    p.add_argument("--what", default="quality", choices=["tracking", "quality", "memory", "speed", "all"])
    p.add_argument("--variants", default="bicubic,per-frame,video")
    p.add_argument("--detect-every", type=int, default=None)
    p.add_argument("--tracking", default="{}", help="TrackerSettings as JSON, e.g. '{\"min_cutoff\": 0.5}'")
    p.add_argument("--keep", type=Path, default=None, help="keep the clips and outputs in this folder")
    p.add_argument("--out", type=Path, default=None, help="write the JSON into this folder")
    p.add_argument("--picture", type=Path, default=None, metavar="PNG",
                   help="with --keep (a folder of an earlier quality run): write a frame side by side, and stop")
    p.add_argument("--picture-frame", type=int, default=30)
    p.add_argument("--picture-box", default="550,130,730,310", help="x0,y0,x1,y1 in output pixels")
    args = p.parse_args(argv)

    from arasfsr.defaults import DEFAULT_FACE_MODEL
    from arasfsr.faces.video import DEFAULT_DETECT_EVERY

    model = args.model or DEFAULT_FACE_MODEL
    detect_every = args.detect_every or DEFAULT_DETECT_EVERY
    tracking = json.loads(args.tracking)
    data = args.data or resolve_data_root()
    work = args.keep or Path(tempfile.mkdtemp(prefix="video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = make_scene(data, args.split, args.still, args.frames, args.noise)
    clip = work / f"clip_{args.split}_{args.frames}.mp4"
    if args.picture is not None:
        box = tuple(int(v) for v in args.picture_box.split(","))
        print(picture(work, clip, args.picture_frame, box, args.picture, scene))
        return
    write_clip(scene, clip)
    record: dict = {**machine(), "model": model, "detect_every": detect_every,
        "tracking": tracking, "clip": {"split": args.split, "frames": args.frames, "still": args.still, "fps": FPS,
                                       "input": [CAMERA[0] // FACTOR, CAMERA[1] // FACTOR], "output": list(CAMERA),
                                       "faces": len(FACE_SIDES), "face_sides_output_px": list(FACE_SIDES),
                                       "noise_sigma": args.noise, "pan_px_per_frame_output": PAN_PX}}
    if args.what in ("tracking", "all"):
        record["tracking_check"] = tracking_check(scene, clip, tracking, detect_every)
        print("tracking", json.dumps({k: v for k, v in record["tracking_check"].items() if "per_frame" not in k}))
    if args.what in ("quality", "all"):
        rows = {}
        for name in args.variants.split(","):
            dst = work / f"{name}.mp4"
            seconds = run_variant(name, clip, dst, model, detect_every, tracking)
            rows[name] = {**measure(scene, dst), "seconds": round(seconds, 1)}
            print(name, json.dumps(rows[name]), flush=True)
            if name == "video":
                rows[name]["kept"] = kept(clip, dst)
                print("kept", json.dumps(rows[name]["kept"]), flush=True)
        if "bicubic" in rows:
            for row in rows.values():
                row["flicker_vs_bicubic"] = row["flicker"] / rows["bicubic"]["flicker"]
                row["face_psnr_gain_db"] = row["face_psnr_y"] - rows["bicubic"]["face_psnr_y"]
        record["quality"] = rows
    if args.what in ("memory", "all"):
        n = args.memory_frames or args.frames
        clips = {}
        for name, frames in (("short", n), ("long", 4 * n)):
            sc = make_scene(data, args.split, frames // 2, frames, args.noise)
            clips[name] = work / f"clip_{args.split}_{frames}.mp4"
            write_clip(sc, clips[name])
        record["memory"] = {}
        for name, src in clips.items():
            mb, wall, _ = peak_rss_mb(cli(src, work / f"memory_{name}.mp4", model))
            record["memory"][name] = {"frames": len(frame_times(src)), "peak_rss_mb": round(mb, 1),
                                      "seconds": round(wall, 1)}
            print("memory", name, record["memory"][name], flush=True)
    if args.what in ("speed", "all"):
        record["speed"] = speed(clip, work, model, detect_every)
    record["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(record, indent=1))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        name = f"video-{args.split}-{args.what}" + (f"-{model}" if model != DEFAULT_FACE_MODEL else "") + ".json"
        write_result(args.out / name, record, "tools.video_bench", argv, indent=1)
        print(args.out / name)


def speed(clip: Path, work: Path, model_name: str, detect_every: int) -> dict:
    """Frames per second at 640x480 -> 1280x960, idle and with a core busy: the command
    (its own figure: frames over the time from the first frame decoded to the file renamed,
    and the wall time with process start and model loading), and the API (torch imported
    first, model and detector loaded before the clock starts)."""
    import re

    from arasfsr import load_model
    from arasfsr.faces import load_detector
    from arasfsr.faces.video import restore_video
    from arasfsr.videoio import read_frames

    frames = len(frame_times(clip))
    model, detector = load_model(model_name), load_detector()
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    for rgb, _ in read_frames(clip):
        detector.detect(rgb)
    after = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {"frames": frames, "detect_seconds_per_frame": round((time.perf_counter() - start) / frames, 3),
                 "detect_cpu_seconds_per_frame": round((after.ru_utime + after.ru_stime - before.ru_utime
                                                        - before.ru_stime) / frames, 3)}
    for busy in (False, True):
        def cli_run():
            start = time.perf_counter()
            proc = subprocess.Popen(cli(clip, work / "speed_cli.mp4", model_name), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            err = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(err[-400:])
            fps = float(re.search(r"([\d.]+) frames/s", err).group(1))
            return time.perf_counter() - start, fps, usage.ru_utime + usage.ru_stime

        def api_run():
            before = resource.getrusage(resource.RUSAGE_SELF)
            res = restore_video(clip, work / "speed_api.mp4", model, size=CAMERA, detector=detector,
                                detect_every=detect_every, overwrite=True, progress=False)
            after = resource.getrusage(resource.RUSAGE_SELF)
            return res.seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

        wall, cli_fps, cli_cpu = with_busy_core(cli_run) if busy else cli_run()
        api, api_cpu = with_busy_core(api_run) if busy else api_run()
        out["busy_core" if busy else "idle"] = row = {
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "cli_fps": cli_fps, "cli_wall_seconds": round(wall, 1),
            "cli_cpu_seconds_per_frame_including_start": round(cli_cpu / frames, 2),
            "api_seconds": round(api, 1), "api_fps": round(frames / api, 4),
            "api_cpu_seconds_per_frame": round(api_cpu / frames, 2)}
        print("speed", row, flush=True)
    return out


if __name__ == "__main__":
    main()
