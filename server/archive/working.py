"""Envelopes' working revisions (documents as uploaded, each signed revision, detached signatures), encrypted.

The envelope service stores them through the :class:`server.blobs.BlobStore` interface; here that interface is
the archive's encrypted store under the scope ``WORKING_SCOPE`` instead of a real organisation (the interface
carries no organisation; the AAD still binds the object id and the scope).  Retention and crypto-shredding of
working revisions are not per organisation: the sealed contract in the archive proper is what retention governs.

Revisions written before encryption was introduced stay readable: a plaintext ``FileBlobStore`` directory given
as ``legacy`` is read (never written) when the encrypted store does not hold an id.
"""

from __future__ import annotations

from ..blobs import BlobMissing, FileBlobStore
from .vault import Archive

WORKING_SCOPE = "signet:working-revisions"


class WorkingBlobs:
    def __init__(self, archive: Archive, legacy: FileBlobStore | None = None) -> None:
        self._archive = archive
        self._legacy = legacy

    def put(self, data: bytes) -> str:
        return self._archive.put(WORKING_SCOPE, data)

    def get(self, sha256: str) -> bytes:
        try:
            return self._archive.get(WORKING_SCOPE, sha256)
        except BlobMissing:
            if self._legacy is not None and self._legacy.exists(sha256):
                return self._legacy.get(sha256)
            raise

    def exists(self, sha256: str) -> bool:
        return self._archive.exists(WORKING_SCOPE, sha256) or (
            self._legacy is not None and self._legacy.exists(sha256))
