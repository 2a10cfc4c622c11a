"""Errors: one base class, no python-pkcs11 exception escapes, messages say what to do and never hold a PIN."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pkcs11
import pytest

from hsm import HsmError, KeyNotFound, LoginRequired, PinIncorrect, TokenNotFound
from hsm.errors import KeyExists, UnsupportedAlgorithm, WrapError

pytestmark = pytest.mark.hsm

PIN_LIKE = "86420"


def test_failing_operations_raise_hsm_errors_only(logged_in_token, hsm_root, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    t, tok = logged_in_token
    key = tok.generate_key("p256", "e")
    cases: list[tuple[Callable[[], object], type[HsmError], str]] = [
        (lambda: tok.sign("00" * 16, b"x"), KeyNotFound, "00" * 16),
        (lambda: tok.sign("not-hex", b"x"), KeyNotFound, "not-hex"),
        (lambda: tok.key(label="nope"), KeyNotFound, "nope"),
        (lambda: tok.delete_key("ab" * 16), KeyNotFound, "ab" * 16),
        (lambda: tok.certificate("zz"), KeyNotFound, "zz"),
        (lambda: tok.create_csr("cd" * 16, {"common_name": "x"}), KeyNotFound, "cd" * 16),
        (lambda: tok.generate_key("p256", "e"), KeyExists, "e"),
        (lambda: tok.generate_key("ed448", "z"), UnsupportedAlgorithm, "ed448"),
        (lambda: tok.sign(key.key_id, b"x", hash_name="sha1"), UnsupportedAlgorithm, "sha1"),
        (lambda: tok.wrap_key("no-kek", b"k" * 32), KeyNotFound, "no-kek"),
        (lambda: tok.wrap_key("no-kek", b"k"), WrapError, "16, 24 or 32"),
        (lambda: hsm_root.token(label="absent"), TokenNotFound, "absent"),
        (lambda: tok.login(PIN_LIKE), PinIncorrect, "tries left"),
    ]
    for fn, kind, hint in cases:
        with pytest.raises(HsmError) as ei:
            fn()
        assert isinstance(ei.value, kind), (kind, ei.value)
        assert not isinstance(ei.value, pkcs11.PKCS11Error)
        msg = str(ei.value)
        assert hint in msg, msg
        assert PIN_LIKE not in msg and t.pin not in msg
    assert tok.logged_in  # a wrong PIN while logged in does not log the token out
    for rec in caplog.records:
        assert PIN_LIKE not in rec.getMessage() and t.pin not in rec.getMessage()


def test_logged_out_token_says_unlock_first(make_token, hsm_root) -> None:
    t = make_token("lo")
    tok = hsm_root.token(serial=t.serial)
    for fn in (tok.keys, lambda: tok.sign("00", b"x"), lambda: tok.generate_kek("k")):
        with pytest.raises(LoginRequired) as ei:
            fn()
        assert t.label in str(ei.value) and "PIN" in str(ei.value)


def test_empty_pin_is_refused_without_touching_the_token(make_token, hsm_root) -> None:
    t = make_token("empty")
    tok = hsm_root.token(serial=t.serial)
    with pytest.raises(PinIncorrect) as ei:
        tok.login("")
    assert ei.value.remaining == 5  # not counted as a failure
