"""Signing on the token (PKCS#1 v1.5, PSS, ECDSA), verified with `cryptography` against the public key."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import utils

from hsm import Hsm, KeyNotFound, SignScheme
from hsm.errors import UnsupportedAlgorithm
from tests.sigcheck import verify_signature

pytestmark = pytest.mark.hsm

DOC = b"Contract: party A pays party B 100 EUR.\n"
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@pytest.fixture
def keys(logged_in_token):
    _, tok = logged_in_token
    return tok, {alg: tok.generate_key(alg, f"s-{alg}") for alg in ("rsa-2048", "p256", "p384")}


@pytest.mark.parametrize("hash_name", sorted(HASHES))
def test_rsa_pkcs1v15(keys, hash_name: str) -> None:
    tok, ks = keys
    key = ks["rsa-2048"]
    sig = tok.sign(key.key_id, DOC, hash_name=hash_name)
    verify_signature(key.public_key_der, sig, DOC, hash=HASHES[hash_name])  # PKCS#1 v1.5
    assert tok.sign(key.key_id, DOC, hash_name=hash_name) == sig  # deterministic scheme
    with pytest.raises(InvalidSignature):
        verify_signature(key.public_key_der, sig, DOC + b"!", hash=HASHES[hash_name])


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_rsa_pss(keys, hash_name: str) -> None:
    tok, ks = keys
    key = ks["rsa-2048"]
    sig = tok.sign(key.key_id, DOC, hash_name=hash_name, scheme=SignScheme.RSA_PSS)
    # MGF1 with the same hash, salt as long as the digest
    verify_signature(key.public_key_der, sig, DOC, hash=HASHES[hash_name], pss=True,
                     salt_length=HASHES[hash_name].digest_size)
    assert tok.sign(key.key_id, DOC, hash_name=hash_name, scheme=SignScheme.RSA_PSS) != sig  # salted


@pytest.mark.parametrize(("alg", "hash_name"), [("p256", "sha256"), ("p384", "sha384"), ("p256", "sha512")])
def test_ecdsa_is_der_and_verifies(keys, alg: str, hash_name: str) -> None:
    tok, ks = keys
    key = ks[alg]
    sig = tok.sign(key.key_id, DOC, hash_name=hash_name)
    assert sig[0] == 0x30  # DER SEQUENCE {r, s}, not PKCS#11's raw r||s
    r, s = utils.decode_dss_signature(sig)
    assert r > 0 and s > 0
    verify_signature(key.public_key_der, sig, DOC, hash=HASHES[hash_name])  # ECDSA


@pytest.mark.parametrize("alg", ["rsa-2048", "p256"])
def test_sign_precomputed_digest(keys, alg: str) -> None:
    tok, ks = keys
    key = ks[alg]
    dgst = hashlib.sha384(DOC).digest()
    sig = tok.sign_digest(key.key_id, dgst, hash_name="sha384")
    # PKCS#1 v1.5 for RSA, ECDSA for EC, both over the digest as given
    verify_signature(key.public_key_der, sig, dgst, hash=hashes.SHA384(), prehashed=True)
    if alg.startswith("rsa"):
        pss = tok.sign_digest(key.key_id, dgst, hash_name="sha384", scheme=SignScheme.RSA_PSS)
        verify_signature(key.public_key_der, pss, dgst, hash=hashes.SHA384(), pss=True, salt_length=48,
                         prehashed=True)


def test_bad_requests_are_refused(keys) -> None:
    tok, ks = keys
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign_digest(ks["p256"].key_id, hashlib.sha256(DOC).digest(), scheme=SignScheme.RSA_PSS)
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign(ks["rsa-2048"].key_id, DOC, scheme=SignScheme.ECDSA)
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign_digest(ks["rsa-2048"].key_id, b"\x00" * 20, hash_name="sha256")  # wrong digest length
    with pytest.raises(UnsupportedAlgorithm):
        tok.sign(ks["rsa-2048"].key_id, DOC, hash_name="md5")


def test_key_deleted_elsewhere_is_key_not_found_and_keeps_login(make_token, tmp_path) -> None:
    """A cached handle gone stale (deleted through another Hsm) must not look like a removed token."""
    t = make_token("stale")
    a = Hsm(pin_state=tmp_path / "a.json").token(serial=t.serial)
    b = Hsm(pin_state=tmp_path / "b.json").token(serial=t.serial)
    a.login(t.pin)
    b.login(t.pin)
    k1, k2 = a.generate_key("p256", "doomed"), a.generate_key("p256", "survivor")
    a.sign(k1.key_id, DOC)  # caches the handle in a's pooled session
    b.delete_key(k1.key_id)
    with pytest.raises(KeyNotFound):
        a.sign(k1.key_id, DOC)
    assert a.logged_in
    verify_signature(k2.public_key_der, a.sign(k2.key_id, DOC), DOC, hash=hashes.SHA256())  # ECDSA
    with pytest.raises(KeyNotFound):
        a.sign(k1.key_id, DOC)
    a.logout()
