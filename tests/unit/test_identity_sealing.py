"""AES-256-GCM field encryption bound to context, and keyed hashes."""

from __future__ import annotations

import pytest

from server.sealing import AesGcmBox, SealingError, derive_key, keyed_hash


def test_round_trip_and_context_binding() -> None:
    box = AesGcmBox(b"\x01" * 32, "dk-1")
    ct = box.encrypt(b"11010519491231002X", b"org|p1")
    assert b"11010519491231002X" not in ct
    assert box.encrypt(b"11010519491231002X", b"org|p1") != ct  # fresh nonce each time
    assert box.decrypt(ct, b"org|p1") == b"11010519491231002X"
    with pytest.raises(SealingError):
        box.decrypt(ct, b"org|p2")  # moved to another row
    tampered = bytearray(ct)
    tampered[-1] ^= 1
    with pytest.raises(SealingError):
        box.decrypt(bytes(tampered), b"org|p1")
    with pytest.raises(SealingError, match="dk-1"):
        AesGcmBox(b"\x01" * 32, "dk-2").decrypt(ct, b"org|p1")
    with pytest.raises(SealingError):
        AesGcmBox(b"\x02" * 32, "dk-1").decrypt(ct, b"org|p1")
    with pytest.raises(SealingError):
        box.decrypt(ct[:20], b"org|p1")
    assert "\\x01" not in repr(box) and "dk-1" in repr(box)


def test_key_sizes() -> None:
    with pytest.raises(ValueError):
        AesGcmBox(b"\x01" * 16)
    with pytest.raises(ValueError):
        derive_key(b"short", "x")


def test_keyed_hash_is_unambiguous_and_keyed() -> None:
    k = derive_key(b"m" * 32, "identity/document")
    assert keyed_hash(k, "ab", "c") != keyed_hash(k, "a", "bc")
    assert keyed_hash(k, "a") == keyed_hash(k, "a")
    assert keyed_hash(derive_key(b"m" * 32, "otp/code"), "a") != keyed_hash(k, "a")
    assert keyed_hash(derive_key(b"n" * 32, "identity/document"), "a") != keyed_hash(k, "a")
