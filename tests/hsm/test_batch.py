"""Token.sign_digests: one session and one key lookup for a batch; every signature verified with `cryptography`."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import utils

from hsm import Hsm, KeyNotFound, SignScheme, TokenRemoved
from hsm.errors import UnsupportedAlgorithm
from hsm.signing import raw_to_der_ecdsa
from tests.conftest import delete_token
from tests.sigcheck import ec_key, rsa_key, verify_signature

pytestmark = pytest.mark.hsm

HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def _digests(n: int, hash_name: str = "sha256") -> list[bytes]:
    return [hashlib.new(hash_name, b"document %d" % i).digest() for i in range(n)]


@pytest.fixture
def keys(logged_in_token):
    _, tok = logged_in_token
    return tok, {alg: tok.generate_key(alg, f"b-{alg}") for alg in ("rsa-2048", "p256", "p384")}


def _verify(pub_der: bytes, sig: bytes, dgst: bytes, hash_name: str, scheme: SignScheme) -> None:
    """``sig`` over the precomputed ``dgst`` under ``scheme`` (the key must be of the scheme's kind)."""
    pub = ec_key(pub_der) if scheme is SignScheme.ECDSA else rsa_key(pub_der)
    verify_signature(pub, sig, dgst, hash=HASHES[hash_name], pss=scheme is SignScheme.RSA_PSS,
                     salt_length=len(dgst) if scheme is SignScheme.RSA_PSS else None, prehashed=True)


@pytest.mark.parametrize(("alg", "scheme", "hash_name"), [
    ("p256", SignScheme.ECDSA, "sha256"), ("p384", SignScheme.ECDSA, "sha384"), ("p256", SignScheme.ECDSA, "sha512"),
    ("rsa-2048", SignScheme.RSA_PKCS1V15, "sha256"), ("rsa-2048", SignScheme.RSA_PKCS1V15, "sha512"),
    ("rsa-2048", SignScheme.RSA_PSS, "sha384"),
])
def test_every_signature_of_a_batch_verifies_in_order(keys, alg: str, scheme: SignScheme, hash_name: str) -> None:
    tok, ks = keys
    key = ks[alg]
    digests = _digests(40, hash_name)
    sigs = tok.sign_digests(key.key_id, digests, hash_name=hash_name, scheme=scheme)
    assert len(sigs) == len(digests)
    for d, s in zip(digests, sigs, strict=True):
        _verify(key.public_key_der, s, d, hash_name, scheme)
    # order matters: a signature checked against its neighbour's digest must fail
    with pytest.raises(InvalidSignature):
        _verify(key.public_key_der, sigs[0], digests[1], hash_name, scheme)


def test_batch_matches_single_calls_and_accepts_bytes_ids(keys) -> None:
    tok, ks = keys
    key = ks["rsa-2048"]  # deterministic scheme: the batch must give exactly what sign_digest gives
    digests = _digests(5)
    assert tok.sign_digests(bytes.fromhex(key.key_id), digests) == [tok.sign_digest(key.key_id, d) for d in digests]
    assert tok.sign_digests(key.key_id, []) == []


def test_a_bad_digest_anywhere_refuses_the_whole_batch_before_signing(keys) -> None:
    tok, ks = keys
    digests = _digests(10)
    digests[7] = digests[7][:20]
    with pytest.raises(UnsupportedAlgorithm, match="digest 7"):
        tok.sign_digests(ks["p256"].key_id, digests)
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign_digests(ks["p256"].key_id, _digests(3), scheme=SignScheme.RSA_PSS)
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign_digests(ks["rsa-2048"].key_id, _digests(3), hash_name="md5")


def test_unknown_and_deleted_keys_are_key_not_found(make_token, tmp_path) -> None:
    t = make_token("batchgone")
    a = Hsm(pin_state=tmp_path / "a.json").token(serial=t.serial)
    b = Hsm(pin_state=tmp_path / "b.json").token(serial=t.serial)
    a.login(t.pin)
    b.login(t.pin)
    try:
        with pytest.raises(KeyNotFound):
            a.sign_digests("00ff00ff", _digests(3))
        k1, k2 = a.generate_key("p256", "doomed"), a.generate_key("p256", "survivor")
        a.sign_digests(k1.key_id, _digests(3))  # caches the handle and the plan
        b.delete_key(k1.key_id)  # deleted through another session: the cached handle is stale
        with pytest.raises(KeyNotFound):
            a.sign_digests(k1.key_id, _digests(3))
        assert a.logged_in
        with pytest.raises(KeyNotFound):
            a.sign_digests(k1.key_id, _digests(3))
        sigs = a.sign_digests(k2.key_id, _digests(3))
        for d, s in zip(_digests(3), sigs, strict=True):
            _verify(k2.public_key_der, s, d, "sha256", SignScheme.ECDSA)
    finally:
        a.logout()
        b.logout()


def _hook_c_sign(monkeypatch, module, before) -> None:
    """Make the module's raw C_Sign (what Token signs through) call ``before(n)`` ahead of its n-th call."""
    real, calls = module.raw.sign, [0]

    def sign(*args):
        calls[0] += 1
        before(calls[0])
        return real(*args)

    monkeypatch.setattr(module.raw, "sign", sign)


def test_token_removed_mid_batch_raises_cleanly_and_returns_nothing(make_token, tmp_path, monkeypatch) -> None:
    t = make_token("batchrm")
    h = Hsm(pin_state=tmp_path / "pins.json")
    tok = h.token(serial=t.serial)
    tok.login(t.pin)
    key = tok.generate_key("p256", "k")
    kid = bytes.fromhex(key.key_id)
    tok.sign_digests(kid, _digests(2))

    def pull_out_on_fifth(n: int) -> None:
        if n == 5:
            delete_token(t.label)  # softhsm2-util deletes it

    _hook_c_sign(monkeypatch, h.module, pull_out_on_fifth)
    # SoftHSM loses the key before the slot (OBJECT_HANDLE_INVALID); the pool asks the slot, which is gone
    with pytest.raises(TokenRemoved) as ei:
        tok.sign_digests(kid, _digests(50))
    assert isinstance(ei.value.__cause__, pkcs11.ObjectHandleInvalid)
    assert not tok.logged_in  # the login went with the token
    h.module.reinitialize()  # what the watcher does: the slot is gone now
    with pytest.raises(TokenRemoved):
        tok.sign_digests(kid, _digests(2))


def test_reinitialize_waits_for_a_batch_in_flight(logged_in_token, hsm_module, monkeypatch) -> None:
    """reinitialize() finalises the module: it must wait until a running batch has returned."""
    _, tok = logged_in_token
    key = tok.generate_key("p256", "long")
    kid = bytes.fromhex(key.key_id)
    tok.sign_digests(kid, _digests(1))
    first = threading.Event()
    _hook_c_sign(monkeypatch, hsm_module, lambda n: first.set())
    results: list[list[bytes]] = []
    digests = _digests(400)
    th = threading.Thread(target=lambda: results.append(tok.sign_digests(kid, digests)))
    th.start()
    assert first.wait(10)  # the batch is signing now
    hsm_module.reinitialize()  # must not pull the module out from under the batch
    assert len(results) == 1, "reinitialize returned while the batch was still signing"
    th.join()
    assert len(results[0]) == 400
    for d, s in zip(digests, results[0], strict=True):
        _verify(key.public_key_der, s, d, "sha256", SignScheme.ECDSA)
    # the pool noticed the new generation: fresh sessions, same login
    _verify(key.public_key_der, tok.sign_digests(kid, digests[:1])[0], digests[0], "sha256", SignScheme.ECDSA)


@pytest.mark.parametrize("raw", [bytes(64), b"\x80" * 64, b"\x00\x00\x7f" + b"\x01" * 61, bytes(range(1, 133))])
def test_ecdsa_der_encoding_edge_cases(raw: bytes) -> None:
    half = len(raw) // 2
    assert raw_to_der_ecdsa(raw) == utils.encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                                               int.from_bytes(raw[half:], "big"))


def test_a_thread_gets_its_own_idle_session_back(logged_in_token) -> None:
    """Sessions stay with the thread that used them (SoftHSM's state for a session stays warm on its CPU)."""
    _, tok = logged_in_token
    pool = tok.pool

    def borrow() -> object:
        with pool.session() as s:
            return s

    with ThreadPoolExecutor(max_workers=1) as other:  # one and the same other thread throughout
        with pool.session() as mine:  # held while the other thread opens and gives back a second session
            first = other.submit(borrow).result()
        assert first is not mine  # two sessions idle now; mine was given back last, on top
        assert other.submit(borrow).result() is first  # not the one on top: its own
    with pool.session() as s:
        assert s is mine
