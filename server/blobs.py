"""Content-addressed blobs: document revisions and detached signatures, named by their SHA-256.

One small interface (:class:`BlobStore`: ``put``, ``get``, ``exists``) so that the archive can later make the
bytes encrypted at rest without changing a caller.  :class:`FileBlobStore` keeps each blob in
``<directory>/<first two hex digits>/<sha256>`` (files 0600, directories 0700), written temp file -> fsync ->
rename -> fsync of the directory (:mod:`signet.durable`): once ``put`` returns, the blob survives a crash or a
power loss, so a store transaction that refers to it may commit.  Blobs are write-once: putting bytes that are
there already changes nothing.  Every read is checked against its name, so a damaged or swapped file is an
error, never wrong bytes handed out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Protocol

from signet.durable import fsync_dir, write_atomic

from .errors import ServerError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(ServerError):
    """A blob the store refers to is not there (the blob directory was damaged or restored partially)."""

    reason = "BLOB_MISSING"


class BlobCorrupt(ServerError):
    """A blob's bytes no longer match its SHA-256."""

    reason = "BLOB_CORRUPT"


class BlobStore(Protocol):
    """``org``: the organisation the bytes belong to; an encrypted store binds them to it (a blob stored for one
    organisation is not found for another), a plain store ignores it."""

    def put(self, data: bytes, *, org: str = "") -> str:
        """Store ``data`` durably; returns its SHA-256 (lowercase hex).  Idempotent."""

    def get(self, sha256: str, *, org: str = "") -> bytes:
        """The bytes named ``sha256``, checked against it; BlobMissing / BlobCorrupt otherwise."""

    def exists(self, sha256: str, *, org: str = "") -> bool: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PUBLISH_TRIES = 3  # writes of one blob whose temp file another process's start-up sweep removed


class FileBlobStore:
    """Blobs as files under one directory (created 0700)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self.swept = self._sweep()

    def _sweep(self) -> int:
        """Remove the temp files a crash (kill -9, power loss) left between writing a blob and publishing it:
        no blob is lost (a write that was acknowledged was published first), only space.  Replicas sharing the
        directory may take each other's in-flight temp files here: a write that loses its temp file before
        publishing writes it again (:data:`PUBLISH_TRIES`)."""
        n = 0
        for tmp in self.directory.glob("[0-9a-f][0-9a-f]/.*.tmp"):
            try:
                tmp.unlink()
                n += 1
            except FileNotFoundError:
                pass
        if n:
            log.info("blob store: removed %d temp file(s) left by an interrupted write", n)
        return n

    def _path(self, sha256: str) -> Path:
        if not _NAME.match(sha256):
            raise ValueError("a blob name is 64 lowercase hex digits")
        return self.directory / sha256[:2] / sha256

    def put(self, data: bytes, *, org: str = "") -> str:
        name = sha256_hex(data)
        path = self._path(name)
        if path.exists():
            return name
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self.directory)  # the fan-out directory's own entry must survive a crash too
        for attempt in range(PUBLISH_TRIES):
            try:
                write_atomic(path, data, 0o600, overwrite=False)
            except FileExistsError:  # a concurrent put of the same bytes published first: the same content
                pass
            except FileNotFoundError:  # another process's start-up sweep took the temp file: write it again
                if attempt + 1 == PUBLISH_TRIES:
                    raise
                continue
            break
        return name

    def get(self, sha256: str, *, org: str = "") -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"blob {sha256} is missing from the blob store") from None
        if sha256_hex(data) != sha256:
            raise BlobCorrupt(f"blob {sha256} is damaged: its content no longer matches its SHA-256")
        return data

    def exists(self, sha256: str, *, org: str = "") -> bool:
        return self._path(sha256).is_file()


__all__ = ["BlobCorrupt", "BlobMissing", "BlobStore", "FileBlobStore", "sha256_hex"]
