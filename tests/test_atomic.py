import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import arasfsr
import arasfsr.atomic as atomic
import arasfsr.checkpoint as checkpoint
from arasfsr.atomic import TempFileError, atomic_write


def usual_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_checkpoint_gets_the_usual_permissions(tmp_path, tiny_model):
    path = checkpoint.save_checkpoint(tiny_model, tmp_path / "m.safetensors", card={"description": "m"})
    # Written through mkstemp (0600), yet readable by others like any exported file.
    assert path.stat().st_mode & 0o777 == usual_mode()
    assert path.with_suffix(".json").stat().st_mode & 0o777 == usual_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_failed_checkpoint_write_leaves_old_file_and_no_temporary(tmp_path, tiny_model, monkeypatch):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", half_written)  # what save_checkpoint calls
    with pytest.raises(OSError, match="No space"):
        checkpoint.save_checkpoint(tiny_model, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_atomic_write_interrupted_and_unwritable(tmp_path):
    target = tmp_path / "a.txt"

    def interrupted(tmp):
        open(tmp, "w").write("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TempFileError):
        atomic_write(tmp_path / "missing" / "a.txt", lambda tmp: None)


# --- kills and leftovers ----------------------------------------------------------------

# The upscale command writing a big PNG through a file object that sends the process
# SIGTERM once 1 MB is written: a kill in the middle of the write, every time.
KILLED_MID_WRITE = r"""
import os, signal, sys
from PIL import Image
from arasfsr.cli.main import main

save = Image.Image.save

class SignalsItself:
    def __init__(self, f):
        self.f, self.written = f, 0
    def write(self, data):
        self.written += len(data)
        if self.written > 1_000_000:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.f.write(data)
    def __getattr__(self, name):
        if name == "fileno":  # no file number: Pillow writes through write(), in Python
            raise AttributeError(name)
        return getattr(self.f, name)

Image.Image.save = lambda self, fp, *a, **k: save(self, SignalsItself(fp), *a, **k)
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    src = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8)).save(src)
    out_dir = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, "upscale", str(src), "--out-dir", str(out_dir),
                           "--scale", "4", "--model", "bicubic"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    # No output, no temporary file, and the folder the run created is gone again.
    assert not out_dir.exists(), list(out_dir.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.png"]


def test_handlers_are_restored_and_foreign_ones_left_alone(tmp_path):
    # Start from the default handler whatever an earlier test left (Ray installs its own).
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _check_handlers(tmp_path)
    finally:
        signal.signal(signal.SIGTERM, before)


def _check_handlers(tmp_path):
    seen = []

    def during(tmp):
        seen.append(signal.getsignal(signal.SIGTERM))

    atomic_write(tmp_path / "a.txt", during)
    assert seen[0] is not signal.SIG_DFL and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    mine = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        handler = signal.getsignal(signal.SIGTERM)
        atomic_write(tmp_path / "b.txt", during)
        assert seen[1] is handler  # the application's own handler decides
    finally:
        signal.signal(signal.SIGTERM, mine)
    # Outside the main thread no handler can be set; the write still works.
    worker = threading.Thread(target=atomic_write, args=(tmp_path / "c.txt", during))
    worker.start()
    worker.join()
    assert (tmp_path / "c.txt").exists()


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_stale_temporary_of_a_dead_process_is_removed_by_the_next_write(tmp_path):
    host = atomic._host_tag()
    stale = tmp_path / f".face.png.arasfsr-{host}-{dead_pid()}-k2j4_x9q.part"
    live = tmp_path / f".face2.png.arasfsr-{host}-{os.getppid()}-a8d0fz1w.part"
    other_host = tmp_path / f".face3.png.arasfsr-elsewhere-{dead_pid()}-a8d0fz1w.part"
    not_ours = [tmp_path / ".face.png.k2j4_x9q.part", tmp_path / "face.png.part",
                tmp_path / f"face.png.arasfsr-{host}-{dead_pid()}-k2j4_x9q.part"]  # not hidden: not ours
    for p in (stale, live, other_host, *not_ours):
        p.write_bytes(b"half an image")
    atomic_write(tmp_path / "new.txt", lambda tmp: Path(tmp).write_text("x"))
    assert not stale.exists()
    assert live.exists() and other_host.exists() and all(p.exists() for p in not_ours)


def test_temporary_name_is_ours_and_errors_name_the_target(tmp_path):
    names = []

    def full_disk(tmp):
        names.append(Path(tmp).name)
        raise OSError(28, "No space left on device", tmp)

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / ("x" * 250), full_disk)  # a long name still fits the folder's limit
    assert caught.value.filename == str(tmp_path / ("x" * 250))
    assert atomic._PART.match(names[0]) and len(names[0]) < 255
    assert list(tmp_path.iterdir()) == []


def test_a_caught_interrupt_keeps_the_exit_status_under_python_m(tmp_path):
    # CPython remembers a KeyboardInterrupt that ended string-evaluated code, even once caught,
    # and under `python -m` turns the exit status into a death by SIGINT (-2) unless cleared.
    (tmp_path / "caught.py").write_text(
        "from arasfsr.entry import exit_module\n"
        "try:\n    exec('raise KeyboardInterrupt')\nexcept KeyboardInterrupt:\n    exit_module(130)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(arasfsr.__file__).parents[1])])}
    proc = subprocess.run([sys.executable, "-m", "caught"], env=env, capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr


def test_a_signal_wrapped_by_a_class_body_still_stops_the_run_cleanly(capsys):
    # Python 3.11 turns what __set_name__ raises into a RuntimeError; a SIGTERM landing while
    # a lazy import builds a dataclass then looked like a bug (exit 1).
    import argparse

    from arasfsr.entry import run_command

    class Stops:
        def __set_name__(self, owner, name):
            raise atomic.Terminated(signal.SIGTERM)

    def body(_args):
        type("Built", (), {"field": Stops()})

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=body)
    assert run_command(parser, []) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
