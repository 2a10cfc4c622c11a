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


def test_a_write_killed_before_publishing_leaves_no_temp_file_after_the_restart(tmp_path: Path) -> None:
    """kill -9 between writing a blob's temp file and publishing it (found by the envelope crash soak): the
    restarted server's blob store removes what the dead one left, and the retried write succeeds."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    directory = tmp_path / "blobs"
    child = (f"import os, signal, sys\nsys.path[:0] = [{str(root)!r}, {str(root / 'proto')!r}]\n"
             "from server.blobs import FileBlobStore\n"
             "os.link = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # the kill lands at the publish step\n"
             f"FileBlobStore({str(directory)!r}).put(b'%PDF-1.7 a contract')\n")
    assert subprocess.run([sys.executable, "-c", child], check=False).returncode == -signal.SIGKILL
    assert len(list(directory.rglob(".*.tmp"))) == 1  # what the dead process left
    blobs = FileBlobStore(directory)  # the restart
    assert blobs.swept == 1 and list(directory.rglob(".*.tmp")) == []
    name = blobs.put(b"%PDF-1.7 a contract")  # the retried request
    assert blobs.get(name) == b"%PDF-1.7 a contract"


def test_a_write_whose_temp_file_another_replica_swept_is_written_again(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas share the blob directory, and a replica's start-up sweep removes every temp file, another replica's
    in-flight one included: that write publishes nothing on its first try, and the put writes it again."""
    directory = tmp_path / "blobs"
    blobs = FileBlobStore(directory)
    real_link = os.link
    swept: list[str] = []

    def link_after_a_sweep(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if not swept:  # the other replica starts now: its sweep takes this write's temp file
            swept.append(src)
            FileBlobStore(directory)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_a_sweep)
    name = blobs.put(b"%PDF-1.7 a contract")
    assert swept and blobs.get(name) == b"%PDF-1.7 a contract"
    assert list(directory.rglob(".*.tmp")) == []
