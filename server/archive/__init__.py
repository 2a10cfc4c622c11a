"""The archive: encrypted, write-once object storage with token-wrapped per-object data keys (see :mod:`.vault`)."""

from .vault import (
    MIGRATIONS,
    Archive,
    BlobShredded,
    EncryptedBlobStore,
    Kek,
    Policy,
    Rotation,
    Shredded,
)

__all__ = ["MIGRATIONS", "Archive", "BlobShredded", "EncryptedBlobStore", "Kek", "Policy", "Rotation", "Shredded"]
