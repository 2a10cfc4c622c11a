"""The file blob store: content-addressed, durable, write-once, private, checked on every read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from server.blobs import BlobCorrupt, BlobMissing, FileBlobStore


def test_put_get_exists(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    data = b"%PDF-1.7 a contract\n"
    name = blobs.put(data)
    assert name == hashlib.sha256(data).hexdigest()
    path = tmp_path / "blobs" / name[:2] / name
    assert path.read_bytes() == data and blobs.get(name) == data and blobs.exists(name)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "blobs").stat().st_mode & 0o777) == "0o700"
    assert not blobs.exists("0" * 64)


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    name = blobs.put(b"same bytes")
    mtime = os.stat(tmp_path / name[:2] / name).st_mtime_ns
    assert blobs.put(b"same bytes") == name
    assert os.stat(tmp_path / name[:2] / name).st_mtime_ns == mtime  # not written again
    assert [p.name for p in (tmp_path / name[:2]).iterdir()] == [name]


def test_reads_are_checked(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    name = blobs.put(b"the signed contract")
    (tmp_path / name[:2] / name).write_bytes(b"the forged contract")
    with pytest.raises(BlobCorrupt):
        blobs.get(name)
    with pytest.raises(BlobMissing):
        blobs.get("ab" * 32)
    with pytest.raises(ValueError):
        blobs.get("../../etc/passwd")
