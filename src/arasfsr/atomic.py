"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

A failure, Ctrl-C, SIGTERM or SIGHUP during the write leaves the previous file (or none)
and no temporary file behind: in the main thread, while a write is under way, SIGTERM and
SIGHUP (where they would kill the process) raise :class:`Terminated` instead, so the
temporary file is removed before the process exits with status 128 + the signal number.
The result gets the usual permissions (``0o666`` less the umask), not the ``0600`` of
``tempfile.mkstemp``.

A SIGKILL (or a power cut) cannot be caught: it can leave one temporary file,
``.NAME.arasfsr-HOST-PID-RANDOM.part``, in the output folder. The next write into that
folder by any arasfsr process on the same host removes such files whose process is no
longer running; the name says which process made it, so no other file is touched.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# Signals whose default action kills the process and that a user or service manager sends.
_CAUGHT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_PART = re.compile(r"^\..*\.arasfsr-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.part$", re.DOTALL)
_swept: set[Path] = set()  # folders already cleared of stale temporary files by this process


class TempFileError(OSError):
    """The temporary file could not be created (the folder is missing or not writable)."""


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived during an atomic write; exits with status 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def atomic_write(path: str | Path, write: Callable[[str], object], replace: bool = True) -> Path:
    """Call ``write(tmp)`` to fill a temporary file in ``path``'s folder, then rename it to ``path``.

    ``replace=False`` never replaces a file: the finished file is linked to ``path`` (which
    fails if anything is there, however recently it appeared: another process's output)
    and :class:`FileExistsError` is raised. Where the file system has no hard links the
    check and the rename are two steps.

    Raises :class:`TempFileError` (an ``OSError``) when the temporary file cannot be made;
    anything ``write`` raises passes through, with the temporary file removed (an
    ``OSError`` about the temporary file names ``path`` instead).
    """
    path = Path(path)
    remove_stale_parts(path.parent)
    with signals_raise():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.arasfsr-{_host_tag()}-{os.getpid()}-",
                                       suffix=".part", dir=path.parent)
        except OSError as exc:
            raise TempFileError(exc.errno, exc.strerror, exc.filename) from exc
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            if replace:
                os.replace(tmp, path)
            else:
                _move_without_replacing(tmp, path)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError) and exc.filename == tmp:  # the user never named our hidden file
                exc.filename = str(path)
            raise
    return path


def _move_without_replacing(tmp: str, path: Path) -> None:
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    try:
        os.link(tmp, path)  # atomic: fails if path appeared since the check
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
    except OSError:  # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the temporary files of atomic writes into ``folder`` whose process has died.

    Only files of our own naming made on this host are considered, and only once per
    folder per process; returns the files removed.
    """
    folder = Path(folder)
    key = folder.resolve() if folder.exists() else folder
    if key in _swept or os.name == "nt":  # Windows: os.kill cannot probe a pid
        return []
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []  # a missing or unreadable folder: the write itself will say so
    _swept.add(key)
    host = _host_tag()
    for entry in entries:
        match = _PART.match(entry.name)
        if match is None or match["host"] != host or _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # someone else's file we may not remove, or already gone
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process; an absurd pid: leave the file alone
    return True


def _host_tag() -> str:
    """This host's name as it may appear in a temporary file's name (letters, digits, _)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


@contextmanager
def signals_raise() -> Iterator[None]:
    """While the block runs, make SIGTERM/SIGHUP raise :class:`Terminated` instead of killing.

    Only in the main thread (the only one that may set handlers), and only for signals
    still at their default action: a handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in _CAUGHT_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it
    os.umask(mask)
    return mask
