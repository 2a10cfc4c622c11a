"""Issuing end-entity certificates from token-signed PKCS#10 requests, checked with openssl."""

from __future__ import annotations

import pytest
from asn1crypto import csr as asn1_csr
from asn1crypto import x509

from formats.policy import DEFAULT_SIGNING_POLICY

from .conftest import openssl, write_pem


def _issue_and_files(pki, tmp_path, csr, identity, **kw):
    issued = pki.ca.issue(csr, identity, "person-1", **kw)
    return issued, write_pem(tmp_path / "leaf.pem", issued.der)


@pytest.mark.parametrize("alg", ["p256", "rsa-2048"])
def test_issued_certificate_verifies_with_openssl_and_has_the_profile(pki, new_key, person, tmp_path, alg):
    key_id, csr = new_key(alg)
    issued, leaf = _issue_and_files(pki, tmp_path, csr, person)
    out = openssl("verify", "-CAfile", str(pki.files / "signing-root.pem"), "-untrusted",
                  str(pki.files / "signing-ca.pem"), str(leaf))
    assert out.stdout.strip().endswith(": OK")
    text = openssl("x509", "-in", str(leaf), "-noout", "-text", "-nameopt", "utf8,sep_comma_plus_space").stdout
    assert "Subject: C=CN, O=Signet Test Org, CN=Zhang San 张三, serialNumber=IDCCN-11010519491231002X" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation" in text
    assert "X509v3 Extended Key Usage: \n                E-mail Protection\n" in text
    assert f"OCSP - URI:{pki.url}/ocsp" in text
    assert f"CA Issuers - URI:{pki.url}/ca/signing-ca.crt" in text
    assert f"Policy: {DEFAULT_SIGNING_POLICY}" in text  # verifiers require it under the Signet signing root
    assert f"URI:{pki.url}/crl/signing-ca.crl" in text
    assert "X509v3 Subject Key Identifier" in text and "X509v3 Authority Key Identifier" in text
    assert "email:zhang.san@example.com" in text
    cert = x509.Certificate.load(issued.der)
    # the certified key is the token key, whatever the request said about the subject
    assert cert.public_key.dump() == pki.agent.key(key_id).public_key_der
    assert cert.key_identifier == cert.public_key.sha1
    assert cert.authority_key_identifier == pki.keys.keys[_role("SIGNING_CA")].certificate.key_identifier
    raw_serial = cert["tbs_certificate"]["serial_number"].contents
    assert len(raw_serial) == 16 and raw_serial[0] & 0x80 == 0 and cert.serial_number > 0
    assert issued.chain == (pki.keys.certificate_der(_role("SIGNING_CA")),
                            pki.keys.certificate_der(_role("SIGNING_ROOT")))


def _role(name):
    from server.ca import Role

    return Role[name]


def test_serials_differ_and_certificates_are_recorded_for_the_person(pki, new_key, person):
    a = pki.ca.issue(new_key()[1], person, "person-rec")
    b = pki.ca.issue(new_key()[1], person, "person-rec")
    assert a.serial != b.serial
    recs = pki.ca.certificates_of("person-rec")
    assert [r.serial for r in recs] == [a.serial, b.serial]
    assert all(r.status == "good" and r.der in (a.der, b.der) for r in recs)


def test_document_signing_is_added_beside_email_protection(pki, new_key, person, tmp_path):
    from server.ca import CertificateAuthority, LeafProfile

    ca = CertificateAuthority(pki.keys, pki.store, pki.ca.clock, pki.urls, LeafProfile(document_signing=True))
    leaf = write_pem(tmp_path / "leaf.pem", ca.issue(new_key()[1], person, "p").der)
    text = openssl("x509", "-in", str(leaf), "-noout", "-text").stdout
    assert "E-mail Protection, 1.3.6.1.5.5.7.3.36" in text


def test_pseudonymous_serial_number(pki, new_key, tmp_path):
    from server.ca import SubjectIdentity, pseudonymous_identifier

    pse = pseudonymous_identifier("CN", b"k" * 32)
    assert pse.startswith("PSECN-") and pse == pseudonymous_identifier("CN", b"k" * 32)
    assert pse != pseudonymous_identifier("CN", b"j" * 32)
    ident = SubjectIdentity("Li Si", pse, "Signet Test Org")
    cert = x509.Certificate.load(pki.ca.issue(new_key()[1], ident, "p").der)
    assert cert.subject.native == {"organization_name": "Signet Test Org", "common_name": "Li Si",
                                   "serial_number": pse}


def test_a_request_with_a_broken_signature_is_refused(pki, new_key, person):
    from server.ca import InvalidRequest

    _, der = new_key("p256")
    req = asn1_csr.CertificationRequest.load(der)
    sig = bytearray(req["signature"].native)
    sig[-1] ^= 0x01
    broken_sig = asn1_csr.CertificationRequest({
        "certification_request_info": req["certification_request_info"],
        "signature_algorithm": req["signature_algorithm"], "signature": bytes(sig)}).dump()
    with pytest.raises(InvalidRequest, match="signature does not verify"):
        pki.ca.issue(broken_sig, person, "p-broken")
    # a request whose content was changed after signing (here: the subject) fails the same way
    info = asn1_csr.CertificationRequestInfo.load(req["certification_request_info"].dump())
    info["subject"] = x509.Name.build({"common_name": "someone else"})
    altered = asn1_csr.CertificationRequest({"certification_request_info": info,
                                             "signature_algorithm": req["signature_algorithm"],
                                             "signature": req["signature"].native}).dump()
    with pytest.raises(InvalidRequest, match="signature does not verify"):
        pki.ca.issue(altered, person, "p-broken")
    with pytest.raises(InvalidRequest, match="not a well-formed"):
        pki.ca.issue(b"\x30\x03\x02\x01\x00", person, "p-broken")
    # nothing was issued for that key
    assert pki.ca.certificates_of("p-broken") == []


def test_the_same_key_is_never_certified_twice(pki, new_key, person):
    from server.ca import KeyAlreadyCertified

    key_id, csr = new_key("p256")
    pki.ca.issue(csr, person, "p-twice")
    # a fresh request for the same key, with another subject, is refused as well
    again = pki.agent.create_csr(key_id, {"common_name": "another request"})
    with pytest.raises(KeyAlreadyCertified):
        pki.ca.issue(again, person, "p-other")
    assert len(pki.ca.certificates_of("p-twice")) == 1 and pki.ca.certificates_of("p-other") == []


def test_server_keys_cannot_be_certified_for_a_person(pki, person):
    """A well-formed request signed by a server key itself (root, CA, TSA, seal) is refused: every server key is on
    record as certified, so no person can ever hold a certificate for it."""
    from server.ca import KeyAlreadyCertified

    for role in ("SIGNING_ROOT", "SIGNING_CA", "TLS_CA", "TSA", "SEAL"):
        key_id = pki.keys.keys[_role(role)].key_id
        csr = pki.token.create_csr(key_id, {"common_name": "Mallory"})
        with pytest.raises(KeyAlreadyCertified):
            pki.ca.issue(csr, person, f"p-server-{role}")
        assert pki.ca.certificates_of(f"p-server-{role}") == []


def test_bad_subjects_are_refused(pki, new_key):
    from server.ca import InvalidRequest, SubjectIdentity, semantics_identifier

    with pytest.raises(InvalidRequest):
        semantics_identifier("library_card", "CN", "123")
    with pytest.raises(InvalidRequest):
        semantics_identifier("id_card", "China", "123")
    csr = new_key()[1]
    for ident in (SubjectIdentity("Evil\nName", "IDCCN-1", "Org"), SubjectIdentity("A" * 65, "IDCCN-1", "Org"),
                  SubjectIdentity("Name", "IDCCN-1_", "Org"), SubjectIdentity("Name", "IDCCN-1", "Org", "cn")):
        with pytest.raises(InvalidRequest):
            pki.ca.issue(csr, ident, "p-bad")
    assert pki.ca.certificates_of("p-bad") == []
