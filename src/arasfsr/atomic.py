"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

A failure or a kill during the write leaves the previous file (or none) and no temporary
file behind; the result gets the usual permissions (``0o666`` less the umask), not the
``0600`` of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


class TempFileError(OSError):
    """The temporary file could not be created (the folder is missing or not writable)."""


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file in ``path``'s folder, then rename it to ``path``.

    Raises :class:`TempFileError` (an ``OSError``) when the temporary file cannot be made;
    anything ``write`` raises passes through, with the temporary file removed.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise TempFileError(exc.errno, exc.strerror, exc.filename) from exc
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it
    os.umask(mask)
    return mask
