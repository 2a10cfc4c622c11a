"""Wrapping AES data keys under a token-held KEK (CKM_AES_KEY_WRAP_PAD, RFC 5649)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from hsm import KeyNotFound, WrappedKey
from hsm.errors import KeyExists, WrapError

from .probes import object_blocks, pkcs11_tool

pytestmark = pytest.mark.hsm


@pytest.mark.parametrize("size", [16, 24, 32])
def test_wrap_unwrap_round_trip_records_mechanism(logged_in_token, size: int) -> None:
    _, tok = logged_in_token
    tok.generate_kek("archive-kek")
    data_key = os.urandom(size)
    wk = tok.wrap_key("archive-kek", data_key)
    assert wk.mechanism == "CKM_AES_KEY_WRAP_PAD" and wk.kek_label == "archive-kek"
    assert len(wk.wrapped) == size + 8  # RFC 5649: 8-byte integrity block, no padding needed here
    assert data_key not in wk.wrapped
    assert tok.unwrap_key(wk) == data_key
    assert tok.wrap_key("archive-kek", data_key) == wk  # deterministic (AIV), as RFC 5649 specifies


def test_kek_is_sensitive_and_stays_on_token(logged_in_token, hsm_module) -> None:
    t, tok = logged_in_token
    tok.generate_kek("kek")
    with pytest.raises(KeyExists):
        tok.generate_kek("kek")
    blocks = [b for b in object_blocks(pkcs11_tool(hsm_module, "--token-label", t.label, "-O", pin=t.pin))
              if b.startswith("Secret Key Object")]
    assert len(blocks) == 1  # the temporary data-key objects never reach the token
    assert "sensitive, always sensitive, never extractable, local" in blocks[0]
    assert "wrap" in blocks[0] and "unwrap" in blocks[0]


def test_wrong_kek_tampering_and_bad_input_raise_wrap_error(logged_in_token) -> None:
    _, tok = logged_in_token
    tok.generate_kek("kek-a")
    tok.generate_kek("kek-b")
    wk = tok.wrap_key("kek-a", os.urandom(32))
    flipped = bytearray(wk.wrapped)
    flipped[5] ^= 1
    # SoftHSM answers all three with CKR_GENERAL_ERROR: the message must say what it means, not "retry"
    for bad in (dataclasses.replace(wk, kek_label="kek-b"), dataclasses.replace(wk, wrapped=bytes(flipped)),
                dataclasses.replace(wk, wrapped=wk.wrapped[:-8])):
        with pytest.raises(WrapError) as ei:
            tok.unwrap_key(bad)
        assert "wrong key or corrupted data" in str(ei.value) and "retry" not in str(ei.value)
    with pytest.raises(WrapError):
        tok.unwrap_key(dataclasses.replace(wk, mechanism="CKM_AES_GCM"))
    with pytest.raises(WrapError):
        tok.wrap_key("kek-a", b"short")
    with pytest.raises(KeyNotFound):
        tok.wrap_key("no-such-kek", os.urandom(32))
    with pytest.raises(KeyNotFound):
        tok.unwrap_key(WrappedKey("no-such-kek", "CKM_AES_KEY_WRAP_PAD", wk.wrapped))
    assert tok.logged_in  # none of it disturbed the login
