"""The raw signing path (C_SignInit + C_Sign through ctypes): python-pkcs11's exceptions for every failure,
the pool's stale-key and removed-token handling on top, CKR_BUFFER_TOO_SMALL, and signatures that verify."""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Mechanism

from hsm import Hsm, KeyNotFound, SignScheme, TokenRemoved, keys, rv, signing
from hsm.errors import SigningFailed
from tests.conftest import delete_token

from .probes import open_sessions

pytestmark = pytest.mark.hsm

DGST = hashlib.sha256(b"raw path").digest()


def _verify_ec(pub_der: bytes, sig: bytes, dgst: bytes = DGST) -> None:
    load_der_public_key(pub_der).verify(sig, dgst, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # type: ignore


def _verify_rsa(pub_der: bytes, sig: bytes, dgst: bytes = DGST) -> None:
    load_der_public_key(pub_der).verify(sig, dgst, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))  # type: ignore


def test_return_values_map_to_python_pkcs11_exceptions() -> None:
    for value, cls in [(0xB3, pkcs11.SessionHandleInvalid), (0x82, pkcs11.ObjectHandleInvalid),
                       (0x60, pkcs11.KeyHandleInvalid), (0x32, pkcs11.DeviceRemoved),
                       (0xE0, pkcs11.TokenNotPresent), (0x05, pkcs11.GeneralError), (0x30, pkcs11.DeviceError),
                       (0x101, pkcs11.UserNotLoggedIn), (0x70, pkcs11.MechanismInvalid),
                       (0x21, pkcs11.DataLenRange), (0x90, pkcs11.OperationActive), (0xB0, pkcs11.SessionClosed)]:
        assert type(rv.error(value)) is cls, hex(value)
    for unmapped in (0x68, 0x8000_0001):  # CKR_KEY_FUNCTION_NOT_PERMITTED and a vendor code: as python-pkcs11 does
        e = rv.error(unmapped)
        assert type(e) is pkcs11.PKCS11Error and hex(unmapped) in str(e)
    assert type(rv.error(rv.CKR_BUFFER_TOO_SMALL)) is pkcs11.PKCS11Error


@pytest.fixture
def pair(logged_in_token):
    """(token, {alg: KeyInfo})."""
    _, tok = logged_in_token
    return tok, {alg: tok.generate_key(alg, f"r-{alg}") for alg in ("rsa-2048", "p256")}


def _both_raise(tok, session, kid: bytes, mechanism: Mechanism, data: bytes, plan: signing.SignPlan):
    """(python-pkcs11's exception, the raw path's exception) for the same failing call."""
    priv = keys.find_private(session, key_id=kid)
    errors = []
    for call in (lambda: priv.sign(data, mechanism=mechanism),
                 lambda: signing.sign_raw(tok.pool.module.raw, signing.SessionKey(priv, session.handle), plan,
                                          (data,))):
        with pytest.raises(pkcs11.PKCS11Error) as ei:
            call()
        errors.append(type(ei.value))
    return errors


def test_the_raw_path_raises_what_python_pkcs11_raises(pair) -> None:
    tok, ks = pair
    rsa, p256 = bytes.fromhex(ks["rsa-2048"].key_id), bytes.fromhex(ks["p256"].key_id)
    ecdsa = signing.plan(ks["p256"].algorithm, SignScheme.ECDSA, "sha256")
    raw_rsa = dataclasses.replace(signing.plan(ks["rsa-2048"].algorithm, SignScheme.RSA_PKCS1V15, "sha256"),
                                  prefix=b"")
    with tok.pool.session() as s:
        # an RSA input longer than PKCS#1 v1.5 allows (SoftHSM 2.6 answers CKR_GENERAL_ERROR)
        a, b = _both_raise(tok, s.session, rsa, Mechanism.RSA_PKCS, b"\1" * 250, raw_rsa)
        assert a is b and a is not pkcs11.PKCS11Error, (a, b)
        # ECDSA with an RSA key (a mechanism the key cannot do)
        a, b = _both_raise(tok, s.session, rsa, Mechanism.ECDSA, DGST, ecdsa)
        assert a is b and a is not pkcs11.PKCS11Error, (a, b)
        # the session still signs afterwards: no operation was left active
        sig = signing.sign_raw(tok.pool.module.raw, signing.SessionKey(keys.find_private(s.session, key_id=p256),
                                                                       s.session.handle), ecdsa, (DGST,))[0]
        _verify_ec(ks["p256"].public_key_der, sig)


def test_a_closed_session_is_session_handle_invalid_on_both_paths(pair) -> None:
    tok, ks = pair
    kid = bytes.fromhex(ks["p256"].key_id)
    with tok.pool.module.shared():
        raw_token = tok.pool._refresh()
        session = raw_token.open(rw=True)
        priv = keys.find_private(session, key_id=kid)
        key = signing.SessionKey(priv, session.handle)
        session.close()
        plan = signing.plan(ks["p256"].algorithm, SignScheme.ECDSA, "sha256")
        with pytest.raises(pkcs11.SessionHandleInvalid):
            priv.sign(DGST, mechanism=Mechanism.ECDSA)
        with pytest.raises(pkcs11.SessionHandleInvalid):
            signing.sign_raw(tok.pool.module.raw, key, plan, (DGST,))


def test_key_deleted_through_another_session_is_key_not_found_and_keeps_the_login(make_token, tmp_path) -> None:
    t = make_token("rawgone")
    a = Hsm(pin_state=tmp_path / "a.json").token(serial=t.serial)
    b = Hsm(pin_state=tmp_path / "b.json").token(serial=t.serial)
    a.login(t.pin)
    b.login(t.pin)
    try:
        k1, k2 = a.generate_key("rsa-2048", "doomed"), a.generate_key("p256", "survivor")
        _verify_rsa(k1.public_key_der, a.sign_digest(k1.key_id, DGST))  # caches the raw key handle
        kid = bytes.fromhex(k1.key_id)
        with a.pool.session() as s:
            stale = s.cache[kid]
            assert isinstance(stale, signing.SessionKey)
        b.delete_key(k1.key_id)
        # what SoftHSM answers C_SignInit with a destroyed key: the class the pool treats as a stale handle
        plan = signing.plan(k1.algorithm, SignScheme.RSA_PKCS1V15, "sha256")
        with a.pool.session() as s, pytest.raises(pkcs11.ObjectHandleInvalid):
            signing.sign_raw(a.pool.module.raw, stale, plan, (DGST,))
        with pytest.raises(KeyNotFound):
            a.sign_digest(k1.key_id, DGST)
        assert a.logged_in
        with pytest.raises(KeyNotFound):
            a.sign_digests(k1.key_id, [DGST] * 3)
        for sig in a.sign_digests(k2.key_id, [DGST] * 3):
            _verify_ec(k2.public_key_der, sig)
    finally:
        a.logout()
        b.logout()


def test_key_handle_invalid_is_key_not_found_too(pair, monkeypatch) -> None:
    """CKR_KEY_HANDLE_INVALID: the standard's answer to C_SignInit with a bad key (SoftHSM: OBJECT_HANDLE_INVALID)."""
    tok, ks = pair
    info = ks["p256"]
    _verify_ec(info.public_key_der, tok.sign_digest(info.key_id, DGST))
    monkeypatch.setattr(tok.pool.module.raw, "sign_init", lambda *args: 0x60)
    with pytest.raises(KeyNotFound):
        tok.sign_digest(info.key_id, DGST)
    monkeypatch.undo()
    assert tok.logged_in
    _verify_ec(info.public_key_der, tok.sign_digest(info.key_id, DGST))


def test_token_deleted_is_token_removed_and_drops_the_login(make_token, tmp_path) -> None:
    t = make_token("rawrm")
    h = Hsm(pin_state=tmp_path / "pins.json")
    tok = h.token(serial=t.serial)
    tok.login(t.pin)
    key = tok.generate_key("p256", "k")
    _verify_ec(key.public_key_der, tok.sign_digest(key.key_id, DGST))
    delete_token(t.label)
    # SoftHSM 2.6 loses a deleted token's objects first (C_SignInit with the cached key: OBJECT_HANDLE_INVALID)
    # while its slot answers C_GetTokenInfo with GENERAL_ERROR: the pool asks the slot, so the answer is that the
    # token is gone (not that the key is), and the login goes with it at once, before any reinitialisation
    with pytest.raises(TokenRemoved) as ei:
        tok.sign_digest(key.key_id, DGST)
    assert isinstance(ei.value.__cause__, pkcs11.ObjectHandleInvalid)
    assert not tok.logged_in
    with pytest.raises(TokenRemoved):  # and it stays removed
        tok.sign_digest(key.key_id, DGST)
    h.module.reinitialize()  # what the watcher does: the slot is gone now
    with pytest.raises(TokenRemoved) as ei:
        tok.sign_digest(key.key_id, DGST)
    assert "is not present" in str(ei.value)
    assert not tok.logged_in


def test_buffer_too_small_asks_the_length_once_and_signs(pair) -> None:
    tok, ks = pair
    for alg, verify in (("p256", _verify_ec), ("rsa-2048", _verify_rsa)):
        info = ks[alg]
        plan = signing.plan(info.algorithm, SignScheme.default_for(info.algorithm), "sha256")
        tiny = dataclasses.replace(plan, sig_size=8)  # a wrong guess: C_Sign answers CKR_BUFFER_TOO_SMALL
        with tok.pool.session() as s:
            key = signing.SessionKey(keys.find_private(s.session, key_id=bytes.fromhex(info.key_id)),
                                     s.session.handle)
            sigs = signing.sign_raw(tok.pool.module.raw, key, tiny, [DGST] * 3)
            assert key.size == plan.sig_size  # grown to what the module asked for, once
        for sig in sigs:
            verify(info.public_key_der, sig)


def test_a_module_refusing_the_length_it_asked_for_costs_the_session_not_the_login(pair, monkeypatch) -> None:
    tok, ks = pair
    info = ks["p256"]
    module = tok.pool.module
    _verify_ec(info.public_key_der, tok.sign_digest(info.key_id, DGST))
    with tok.pool.session() as s:
        broken_session = s
    real = module.raw.sign

    def refuses(sh, data, n, buf, length_ptr):  # C_SignInit was real: the operation stays active
        if buf is None:
            length_ptr.contents.value = 64
            return 0
        return rv.CKR_BUFFER_TOO_SMALL

    monkeypatch.setattr(module.raw, "sign", refuses)
    with pytest.raises(SigningFailed):
        tok.sign_digest(info.key_id, DGST)
    monkeypatch.setattr(module.raw, "sign", real)
    assert tok.logged_in
    # the session with the active operation was closed, not pooled (nor leaked): the next signature gets a fresh one
    slot = tok.info().slot_id
    assert broken_session.session.handle not in open_sessions(module, slot)
    with tok.pool.session() as s:
        assert s is not broken_session
    _verify_ec(info.public_key_der, tok.sign_digest(info.key_id, DGST))


def test_two_threads_sign_in_parallel_and_every_signature_verifies(pair) -> None:
    tok, ks = pair
    results: dict[str, list[tuple[bytes, bytes]]] = {"rsa-2048": [], "p256": []}
    errors: list[BaseException] = []

    def work(alg: str, n: int) -> None:
        try:
            for i in range(n):
                d = hashlib.sha256(b"%s %d" % (alg.encode(), i)).digest()
                results[alg].append((d, tok.sign_digest(ks[alg].key_id, d)))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(alg, n))
               for alg, n in (("rsa-2048", 100), ("p256", 400), ("p256", 400))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results["rsa-2048"]) == 100 and len(results["p256"]) == 800
    for d, sig in results["rsa-2048"]:
        _verify_rsa(ks["rsa-2048"].public_key_der, sig, d)
    for d, sig in results["p256"]:
        _verify_ec(ks["p256"].public_key_der, sig, d)
