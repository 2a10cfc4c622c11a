"""Envelopes' working revisions (documents as uploaded, each signed revision, detached signatures), encrypted.

The envelope service stores them through the :class:`server.blobs.BlobStore` interface, naming the envelope's
organisation; here that interface is the archive's encrypted store under the scope ``signet:working-revisions:ORG``
(:func:`scope`), so the AAD binds the object id and the organisation, and a revision stored for one organisation
is not found for another.  Retention and crypto-shredding of working revisions are not per organisation: the
sealed contract in the archive proper is what retention governs.

Read, never written: revisions stored before the organisation was bound (under ``WORKING_SCOPE`` alone), and a
plaintext ``FileBlobStore`` directory of a version before encryption, given as ``legacy``.
"""

from __future__ import annotations

from ..blobs import BlobMissing, FileBlobStore
from .vault import Archive

WORKING_SCOPE = "signet:working-revisions"


def scope(org: str) -> str:
    """The archive scope of ``org``'s working revisions."""
    return f"{WORKING_SCOPE}:{org}" if org else WORKING_SCOPE


class WorkingBlobs:
    def __init__(self, archive: Archive, legacy: FileBlobStore | None = None) -> None:
        self._archive = archive
        self._legacy = legacy

    def put(self, data: bytes, *, org: str = "") -> str:
        return self._archive.put(scope(org), data)

    def get(self, sha256: str, *, org: str = "") -> bytes:
        for where in dict.fromkeys((scope(org), WORKING_SCOPE)):
            try:
                return self._archive.get(where, sha256)
            except BlobMissing:
                continue
        if self._legacy is not None and self._legacy.exists(sha256):
            return self._legacy.get(sha256)
        raise BlobMissing(f"working revision {sha256} is not stored for organisation {org!r}")

    def exists(self, sha256: str, *, org: str = "") -> bool:
        return any(self._archive.exists(where, sha256) for where in dict.fromkeys((scope(org), WORKING_SCOPE))) \
            or (self._legacy is not None and self._legacy.exists(sha256))
