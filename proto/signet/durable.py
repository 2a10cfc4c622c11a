"""Crash-safe file writes: temp file in the same directory -> fsync -> rename -> fsync the directory.

After a crash the target is either wholly the old content or wholly the new one, and an acknowledged
write survives power loss (the rename itself is made durable by the directory fsync).  Used for every
file Signet writes that must not tear: signed outputs, PIN-failure counters, keys and certificates,
downloads, blobs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new directory entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def open_atomic(path: str | os.PathLike[str], mode: int = 0o600, *, overwrite: bool = True,
                dir_mode: int = 0o700) -> Iterator[BinaryIO]:
    """A writable (and readable) temp file beside ``path``; on success it replaces ``path``.

    The temp file has ``mode`` from its creation (a key is never briefly readable by others).  On any
    exception it is removed and ``path`` is left as it was.  With ``overwrite=False`` an existing
    ``path`` is a :class:`FileExistsError`, checked before and (by a hard link) at the moment of publishing.
    A missing parent directory is created with ``dir_mode``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    if not overwrite and p.exists():
        raise FileExistsError(f"{p} exists; refusing to overwrite it")
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)  # fails with FileExistsError if someone published meanwhile
            with contextlib.suppress(FileNotFoundError):  # published; the temp name may be swept already
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so that it is either wholly there or absent after a crash."""
    with open_atomic(path, mode, overwrite=overwrite) as f:
        f.write(data)
