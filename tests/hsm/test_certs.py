"""PKCS#10 requests signed on the token (checked by openssl) and certificates stored beside their key."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hsm import Hsm
from hsm.errors import CertificateError

from .probes import object_blocks, pkcs11_tool

pytestmark = pytest.mark.hsm

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SUBJECT = {"common_name": "张三 Zhang San", "serial_number": "IDCCN-11010519491231002X",
           "organization_name": "Signet Test", "country_name": "CN"}


def _openssl_verify(tmp_path: Path, der: bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "req.pem"
    path.write_bytes(pem.armor("CERTIFICATE REQUEST", der))
    return subprocess.run(["openssl", "req", "-in", str(path), "-verify", "-noout"], capture_output=True, text=True)


@pytest.mark.parametrize("alg", ["rsa-2048", "p256", "p384"])
def test_csr_is_signed_by_the_token_key(logged_in_token, tmp_path: Path, alg: str) -> None:
    _, tok = logged_in_token
    key = tok.generate_key(alg, f"csr-{alg}")
    der = tok.create_csr(key.key_id, SUBJECT, dns_names=["signer.example"], emails=["zhang@example.com"])
    res = _openssl_verify(tmp_path, der)
    assert res.returncode == 0 and "self-signature verify OK" in (res.stdout + res.stderr), res.stderr
    req = x509.load_der_x509_csr(der)
    assert req.is_signature_valid
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert req.public_key().public_bytes(serialization.Encoding.DER, spki) == key.public_key_der
    assert req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "张三 Zhang San"
    assert req.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == SUBJECT["serial_number"]
    san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["signer.example"]
    assert san.get_values_for_type(x509.RFC822Name) == ["zhang@example.com"]
    ku_ext = req.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku_ext.critical and ku_ext.value.digital_signature and ku_ext.value.content_commitment
    assert not ku_ext.value.key_cert_sign
    # a request altered after signing is refused by the same check (openssl 3 exits 0 either way: read its text)
    tampered = der.replace(b"Signet Test", b"Signet Tesx")
    assert tampered != der
    out = _openssl_verify(tmp_path, tampered)
    assert "verify failure" in out.stdout + out.stderr and "verify OK" not in out.stdout + out.stderr


def _ca(name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    iss_name, iss_key = issuer or (subject, key)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(iss_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW)
            .not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(iss_key, hashes.SHA256()))
    return cert, key


def _issue(csr_der: bytes, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    req = x509.load_der_x509_csr(csr_der)
    return (x509.CertificateBuilder().subject_name(req.subject).issuer_name(ca_cert.subject)
            .public_key(req.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256()))


def _der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


def test_import_certificate_and_chain_and_read_back(logged_in_token, hsm_module, tmp_path: Path) -> None:
    t, tok = logged_in_token
    root, root_key = _ca("Test Root")
    sub, sub_key = _ca("Test Issuing CA", (root.subject, root_key))
    key = tok.generate_key("p256", "signer")
    leaf = _issue(tok.create_csr(key.key_id, SUBJECT), sub, sub_key)
    tok.import_certificate(key.key_id, _der(leaf), chain=[_der(sub), _der(root)])
    assert tok.certificate(key.key_id) == _der(leaf)
    assert tok.chain(key.key_id) == [_der(sub), _der(root)]
    assert tok.key(key.key_id).certificate_der == _der(leaf)
    assert {k.key_id: k.certificate_der for k in tok.keys()} == {key.key_id: _der(leaf)}
    # stored as token objects next to the key: a new Hsm (new sessions, new login) still finds them
    tok2 = Hsm(pin_state=tmp_path / "p2.json").token(serial=t.serial)
    tok2.login(t.pin)
    assert tok2.certificate(key.key_id) == _der(leaf)
    certs = [b for b in object_blocks(pkcs11_tool(hsm_module, "--token-label", t.label, "-O", "--type", "cert"))
             if b.startswith("Certificate Object")]
    assert len(certs) == 3
    assert any(f"ID:         {key.key_id}" in b and "label:      signer" in b for b in certs)
    # importing the chain again adds nothing; a renewed certificate replaces the old one
    renewed = _issue(tok.create_csr(key.key_id, SUBJECT), sub, sub_key)
    tok.import_certificate(key.key_id, _der(renewed), chain=[_der(sub), _der(root)])
    assert tok.certificate(key.key_id) == _der(renewed)
    certs = [b for b in object_blocks(pkcs11_tool(hsm_module, "--token-label", t.label, "-O", "--type", "cert"))
             if b.startswith("Certificate Object")]
    assert len(certs) == 3


def test_certificate_for_another_key_is_refused(logged_in_token) -> None:
    _, tok = logged_in_token
    root, root_key = _ca("Test Root")
    mine = tok.generate_key("p256", "mine")
    other = tok.generate_key("p256", "other")
    cert = _issue(tok.create_csr(other.key_id, SUBJECT), root, root_key)
    with pytest.raises(CertificateError) as ei:
        tok.import_certificate(mine.key_id, _der(cert))
    assert mine.key_id in str(ei.value)
    assert tok.certificate(mine.key_id) is None
    with pytest.raises(CertificateError):
        tok.import_certificate(mine.key_id, b"not a certificate")
