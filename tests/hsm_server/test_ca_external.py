"""Registering certificates issued by another CA (built here with `cryptography` as that CA)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sigcheck import signing_key


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn, issuer=None, issuer_key=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer.subject if issuer else _name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(issuer_key or key, hashes.SHA256()))
    return cert, key


def _leaf(ca, ca_key, spki_der, *, days=365, start_days_ago=1, ca_flag=False):
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(_name("External Person")).issuer_name(ca.subject)
            .public_key(signing_key(spki_der)).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=start_days_ago)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, ca_flag, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())).public_bytes(serialization.Encoding.DER)


def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def external():
    root, root_key = _ca("External Root")
    sub, sub_key = _ca("External Sub CA", root, root_key)
    return root, sub, sub_key


def _spki(pki):
    import os

    return pki.agent.generate_key("p256", f"ext-{os.urandom(4).hex()}").public_key_der


def test_registered_after_chain_validation(pki, external):
    from server.ca import ExternalRoots, db, register_external

    root, sub, sub_key = external
    leaf = _leaf(sub, sub_key, _spki(pki))
    rec = register_external(pki.store, "p-ext", leaf, [_der(sub)], ExternalRoots((_der(root),)), pki.ca.clock)
    assert rec.origin == "external" and rec.person_id == "p-ext" and rec.der == leaf
    assert rec.issuer_key_hash == db.spki_hash(sub.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert [r.der for r in db.for_person(pki.store, "p-ext")] == [leaf]


def test_refused_chains(pki, external):
    from server.ca import ChainInvalid, ExternalRoots, Role, SubjectIdentity, register_external

    root, sub, sub_key = external
    own_key = pki.agent.generate_key("p256", "ext-own").key_id
    own = pki.ca.issue(pki.agent.create_csr(own_key, {"common_name": "x"}), SubjectIdentity("A B", "IDCCN-1", "Org"),
                       "p-own").der
    other_root, _ = _ca("Some Other Root")
    roots = ExternalRoots((_der(root),))
    cases = {
        "untrusted root": (_leaf(sub, sub_key, _spki(pki)), [_der(sub)], ExternalRoots((_der(other_root),))),
        "missing intermediate": (_leaf(sub, sub_key, _spki(pki)), [], roots),
        "expired": (_leaf(sub, sub_key, _spki(pki), days=-1, start_days_ago=30), [_der(sub)], roots),
        "a CA certificate": (_leaf(sub, sub_key, _spki(pki), ca_flag=True), [_der(sub)], roots),
        "our own chain is not an external root": (own, [pki.keys.certificate_der(Role.SIGNING_CA)], roots),
        "garbage": (b"\x30\x00", [], roots),
        "no roots configured": (_leaf(sub, sub_key, _spki(pki)), [_der(sub)], ExternalRoots(())),
    }
    for what, (leaf, chain, trust) in cases.items():
        with pytest.raises(ChainInvalid):
            register_external(pki.store, "p-refused", leaf, chain, trust, pki.ca.clock)
            pytest.fail(f"{what} was accepted")
    from server.ca import db

    assert db.for_person(pki.store, "p-refused") == []


def test_a_key_certified_here_cannot_be_registered_again(pki, external, person):
    from server.ca import ExternalRoots, KeyAlreadyCertified, register_external

    root, sub, sub_key = external
    info = pki.agent.generate_key("p256", "ext-dup")
    pki.ca.issue(pki.agent.create_csr(info.key_id, {"common_name": "x"}), person, "p-dup")
    leaf = _leaf(sub, sub_key, info.public_key_der)
    with pytest.raises(KeyAlreadyCertified):
        register_external(pki.store, "p-dup", leaf, [_der(sub)], ExternalRoots((_der(root),)), pki.ca.clock)
