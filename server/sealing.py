"""Field encryption and keyed hashes for personal data at rest.

:class:`SecretBox` is what domain code needs: authenticated encryption bound to context
(``aad``).  :class:`AesGcmBox` is the in-process implementation (AES-256-GCM with a data key
held in memory); the server can back the same interface with a data key unwrapped by its HSM.

Ciphertext format of :class:`AesGcmBox` (version 1)::

    0x01 | len(key_id) (1 byte) | key_id (ASCII) | nonce (12 bytes) | AES-GCM ciphertext+tag

The key id is inside the blob so several data keys can coexist during a rotation.

:func:`derive_key` separates one server secret into per-purpose HMAC keys, so a hash made for
duplicate detection can never be confused with a one-time-code hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ServerError

_VERSION = 1
_NONCE_LEN = 12


class SealingError(ServerError):
    """A ciphertext could not be opened (wrong key, wrong context, or tampered)."""

    reason = "DECRYPTION_FAILED"


class SecretBox(Protocol):
    key_id: str

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises :class:`SealingError` when the key, the ``aad`` or the bytes do not match."""


class AesGcmBox:
    """AES-256-GCM with random 96-bit nonces, one in-memory data key."""

    def __init__(self, key: bytes, key_id: str = "local-1") -> None:
        if len(key) != 32:
            raise ValueError("AesGcmBox needs a 32-byte key (AES-256)")
        kid = key_id.encode("ascii")
        if not 0 < len(kid) < 256:
            raise ValueError("key_id must be 1..255 ASCII characters")
        self.key_id = key_id
        self._kid = kid
        self._aead = AESGCM(key)

    @classmethod
    def generate(cls, key_id: str = "local-1") -> AesGcmBox:
        return cls(AESGCM.generate_key(bit_length=256), key_id)

    def __repr__(self) -> str:
        return f"AesGcmBox(key_id={self.key_id!r})"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        return bytes([_VERSION, len(self._kid)]) + self._kid + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        if len(ciphertext) < 2 or ciphertext[0] != _VERSION:
            raise SealingError("unknown ciphertext format")
        kid_len = ciphertext[1]
        kid = ciphertext[2 : 2 + kid_len]
        if kid != self._kid:
            raise SealingError(f"ciphertext was made with data key {kid.decode('ascii', 'replace')!r}, "
                               f"this box holds {self.key_id!r}")
        rest = ciphertext[2 + kid_len :]
        if len(rest) < _NONCE_LEN + 16:
            raise SealingError("ciphertext is truncated")
        try:
            return self._aead.decrypt(rest[:_NONCE_LEN], rest[_NONCE_LEN:], aad)
        except InvalidTag as e:
            raise SealingError("ciphertext does not authenticate (wrong key, wrong context or tampered)") from e


def derive_key(master: bytes, label: str) -> bytes:
    """A purpose-specific 32-byte key from the server secret (HMAC-SHA256 as a PRF)."""
    if len(master) < 32:
        raise ValueError("the server HMAC secret must be at least 32 bytes")
    return hmac.new(master, b"signet/derive/v1\x00" + label.encode("utf-8"), hashlib.sha256).digest()


def keyed_hash(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 over length-prefixed parts, hex; unambiguous for any part contents."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode("utf-8")
        mac.update(len(data).to_bytes(4, "big"))
        mac.update(data)
    return mac.hexdigest()
