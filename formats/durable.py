"""Durable file writes shared by agent and server: temp file -> fsync -> rename -> fsync directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def open_atomic(path: str | os.PathLike[str], mode: int = 0o600) -> Iterator[BinaryIO]:
    """A writable (and readable) temp file beside ``path``; on success it replaces ``path``.

    On any exception the temp file is removed and ``path`` is left as it was, so
    after a crash the file is either wholly the old or wholly the new content.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that it is either wholly there or absent after a crash."""
    with open_atomic(path, mode) as f:
        f.write(data)
