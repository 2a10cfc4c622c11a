"""Uploads spooled to private temporary files (0600 in a 0700 directory), with size limits and SHA-256.

A large PDF is never held whole in memory: chunks go straight to disk as they
arrive, and results are streamed back from disk in chunks.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    sha256: str


@contextmanager
def temp_path(directory: Path, suffix: str = "") -> Iterator[Path]:
    """A fresh private file name in ``directory``; removed afterwards whatever happens."""
    fd, name = tempfile.mkstemp(dir=directory, prefix="job-", suffix=suffix)  # mode 0600
    os.close(fd)
    try:
        yield Path(name)
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def read_chunks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            yield block
