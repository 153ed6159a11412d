"""Which paths name the same file, whatever the aliases.

Comparing resolved path strings misses a bind mount (``mount --bind in in2``), a hard link
and, on a case-insensitive file system (macOS, Windows), ``Face.png`` beside ``face.png``.
:func:`path_keys` gives each path a set of keys, and two paths name the same file when
their sets meet:

- an existing file is its device and inode (what the kernel writes to, reached by any name);
- any path, existing or not, is its nearest existing folder's device and inode plus the
  names below it, case-folded where that folder's file system ignores case (found by
  probing, once per folder; :func:`case_insensitive`).
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path


def path_keys(path: str | Path) -> frozenset[tuple]:
    """Keys shared by exactly the paths that name the same file (existing or to be written)."""
    p = Path(path).resolve()
    rest: list[str] = []
    keys = set()
    folder = p
    while True:
        try:
            st = os.stat(folder)
            break
        except OSError:
            if folder.parent == folder:  # nothing of it exists, not even the root: compare the text
                return frozenset({("text", str(p))})
            rest.append(folder.name)
            folder = folder.parent
    if not rest:  # the file exists: its identity, and its name in its folder
        keys.add(("file", st.st_dev, st.st_ino))
        rest.append(folder.name)
        folder = folder.parent
        try:
            st = os.stat(folder)
        except OSError:
            return frozenset(keys)
    names = tuple(reversed(rest))
    if case_insensitive(folder):
        names = tuple(n.casefold() for n in names)
    keys.add(("name", st.st_dev, st.st_ino, names))
    return frozenset(keys)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file (or one file still to be written)."""
    return bool(path_keys(a) & path_keys(b))


class PathIndex:
    """Paths by the file they name: ``index.get(path)`` is what was ``add``-ed under any
    alias of ``path``, else None."""

    def __init__(self) -> None:
        self._by_key: dict[tuple, object] = {}

    def get(self, path: str | Path) -> object | None:
        for key in path_keys(path):
            if key in self._by_key:
                return self._by_key[key]
        return None

    def add(self, path: str | Path, value: object) -> None:
        for key in path_keys(path):
            self._by_key[key] = value


def case_insensitive(folder: str | Path) -> bool:
    """Whether names in ``folder`` are compared without case (probed, cached per folder)."""
    try:
        st = os.stat(folder)
    except OSError:
        return _platform_default()
    return _probe_case(str(folder), st.st_dev, st.st_ino)


@lru_cache(maxsize=256)
def _probe_case(folder: str, dev: int, ino: int) -> bool:
    """Look up an entry of ``folder`` (or the folder itself) by its name with the case
    swapped: the same inode means the file system ignores case. Nothing is written."""
    candidates: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name != entry.name.swapcase():
                    candidates.append(os.path.join(folder, entry.name))
                    break
    except OSError:
        pass
    own = Path(folder).resolve()
    try:  # the folder's own name is looked up in its parent: only if that is the same file system
        same_device = os.stat(own.parent).st_dev == dev
    except OSError:
        same_device = False
    if same_device and own.name != own.name.swapcase():
        candidates.append(str(own))
    for path in candidates:
        head, name = os.path.split(path)
        try:
            here = os.stat(path)
            there = os.stat(os.path.join(head, name.swapcase()))
        except FileNotFoundError:
            return False
        except OSError:
            continue
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    return _platform_default()


def _platform_default() -> bool:
    """Nothing to probe with: the usual default of the system's own file systems."""
    return sys.platform in ("darwin", "win32")
