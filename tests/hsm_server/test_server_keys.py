"""`init_server_keys` on a real SoftHSM token: what it creates, that it never overwrites, and key attributes."""

from __future__ import annotations

import pytest
from asn1crypto import x509
from pkcs11 import Attribute, ObjectClass

from .conftest import openssl, write_pem

LABELS = ["signet-signing-root", "signet-signing-ca", "signet-tls-root", "signet-tls-ca", "signet-ocsp", "signet-tsa",
          "signet-seal", "signet-audit"]


@pytest.fixture
def fresh(make_token, tmp_path):
    from hsm import Hsm
    from server.store import open_store

    t = make_token("keys")
    tok = Hsm(pin_state=tmp_path / "pins.json").token(serial=t.serial)
    tok.login(t.pin)
    store = open_store(str(tmp_path / "db.sqlite"))
    yield tok, store
    store.close()
    tok.logout()


def _init(tok, store, **kw):
    from server.ca import PkiUrls
    from server.clock import SystemClock
    from server.keys import KeySetPolicy, init_server_keys

    return init_server_keys(tok, store, "Keys Org", SystemClock(), urls=PkiUrls("http://pki.example"),
                            policy=KeySetPolicy(family="ec", country="DE"), **kw)


def test_init_creates_everything_once_and_never_overwrites(fresh, tmp_path):
    from server.keys import load_server_keys

    tok, store = fresh
    first = _init(tok, store)
    assert first.existing == ()
    assert set(first.created) == {*LABELS, *(f"{lbl} certificate" for lbl in LABELS), "signet-archive-kek"}
    before = load_server_keys(tok, store)
    second = _init(tok, store)
    assert second.created == () and set(second.existing) == {*LABELS, "signet-archive-kek"}
    after = load_server_keys(tok, store)
    for role, key in before.keys.items():
        assert after[role] == key  # same key ids, public keys and certificates
    assert len(tok.keys()) == len(LABELS)
    # the chain is sound: openssl verifies every service certificate up to the root
    files = {r.value: write_pem(tmp_path / f"{r.value}.pem", k.certificate_der) for r, k in after.keys.items()}
    for name in ("ocsp", "tsa", "seal", "audit"):
        out = openssl("verify", "-CAfile", str(files["signing-root"]), "-untrusted", str(files["signing-ca"]),
                      str(files[name]))
        assert out.stdout.strip().endswith("OK")
    ocsp_text = openssl("x509", "-in", str(files["ocsp"]), "-noout", "-text").stdout
    assert "OCSP Signing" in ocsp_text and "OCSP No Check" in ocsp_text
    tsa_text = openssl("x509", "-in", str(files["tsa"]), "-noout", "-text").stdout
    assert "X509v3 Extended Key Usage: critical\n                Time Stamping\n" in tsa_text
    for root_name, ca_name in (("SIGNING_ROOT", "SIGNING_CA"), ("TLS_ROOT", "TLS_CA")):
        root = x509.Certificate.load(after.certificate_der(_role(root_name)))
        assert root.self_signed == "maybe" and root.ca and root.subject.native["country_name"] == "DE"
        issuing = x509.Certificate.load(after.certificate_der(_role(ca_name)))
        assert issuing.max_path_length == 0 and issuing.not_valid_after <= root.not_valid_after
        assert issuing.issuer == root.subject


def test_two_hierarchies_signing_and_tls_never_meet(fresh, tmp_path):
    """TLS certificates chain to the TLS root only; the signing root lists its marker and signature policies."""
    from formats.policy import (
        DEFAULT_REMOTE_POLICY,
        DEFAULT_SEAL_POLICY,
        DEFAULT_SIGNING_POLICY,
        SIGNING_ROOT_MARKER,
        TLS_ROOT_MARKER,
    )
    from server.keys import load_server_keys

    tok, store = fresh
    _init(tok, store)
    keys = load_server_keys(tok, store)
    files = {r.value: write_pem(tmp_path / f"{r.value}.pem", k.certificate_der) for r, k in keys.keys.items()}
    # the TLS CA does not verify under the signing root, nor the signing CA under the TLS root
    out = openssl("verify", "-CAfile", str(files["signing-root"]), str(files["tls-ca"]), check=False)
    assert out.returncode != 0
    out = openssl("verify", "-CAfile", str(files["tls-root"]), str(files["signing-ca"]), check=False)
    assert out.returncode != 0
    assert openssl("verify", "-CAfile", str(files["tls-root"]), str(files["tls-ca"])).stdout.strip().endswith("OK")

    def policies(role):
        cert = x509.Certificate.load(keys.certificate_der(_role(role)))
        value = cert.certificate_policies_value
        return [p["policy_identifier"].dotted for p in value] if value is not None else []

    assert policies("SIGNING_ROOT") == [SIGNING_ROOT_MARKER, DEFAULT_SIGNING_POLICY, DEFAULT_REMOTE_POLICY,
                                        DEFAULT_SEAL_POLICY]
    assert policies("TLS_ROOT") == [TLS_ROOT_MARKER]
    assert DEFAULT_SEAL_POLICY in policies("SEAL") and policies("TLS_CA") == []


def test_keys_are_non_extractable_and_the_kek_wraps(fresh):
    tok, store = fresh
    _init(tok, store)
    with tok.pool.session() as s:
        privs = list(s.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        secrets = list(s.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        assert sorted(p[Attribute.LABEL] for p in privs) == sorted(LABELS)
        assert [k[Attribute.LABEL] for k in secrets] == ["signet-archive-kek"]
        for obj in privs + secrets:
            assert obj[Attribute.SENSITIVE] and not obj[Attribute.EXTRACTABLE]
            assert obj[Attribute.NEVER_EXTRACTABLE] and obj[Attribute.ALWAYS_SENSITIVE] and obj[Attribute.LOCAL]
    data_key = bytes(range(32))
    wrapped = tok.wrap_key("signet-archive-kek", data_key)
    assert wrapped.wrapped != data_key and tok.unwrap_key(wrapped) == data_key


def test_an_interrupted_init_is_finished_without_replacing_keys(fresh):
    """Keys generated before a crash get their certificates on the next run; nothing is regenerated."""
    from server.ca import ServerKeysMissing
    from server.keys import load_server_keys

    tok, store = fresh
    root_before = tok.generate_key("p384", "signet-signing-root")  # as if init died right after this
    with pytest.raises(ServerKeysMissing, match=r"signet-signing-root certificate.*signet-signing-ca"):
        load_server_keys(tok, store)
    report = _init(tok, store)
    assert "signet-signing-root" in report.existing and "signet-signing-root certificate" in report.created
    keys = load_server_keys(tok, store)
    assert keys[_role("SIGNING_ROOT")].key_id == root_before.key_id
    root = x509.Certificate.load(keys.certificate_der(_role("SIGNING_ROOT")))
    assert root.public_key.dump() == root_before.public_key_der


def test_a_token_of_the_old_single_ca_layout_is_refused_with_advice(fresh):
    """A server token made when one CA certified both signing and TLS keys is not silently reused."""
    from server.ca import ServerKeysMissing
    from server.keys import load_server_keys

    tok, store = fresh
    tok.generate_key("p256", "signet-issuing")
    for attempt in (lambda: _init(tok, store), lambda: load_server_keys(tok, store)):
        with pytest.raises(ServerKeysMissing, match=r"earlier Signet.*Re-initialise.*signet-server init"):
            attempt()
    assert [k.label for k in tok.keys()] == ["signet-issuing"]  # nothing was added next to it


def _role(name):
    from server.ca import Role

    return Role[name]
