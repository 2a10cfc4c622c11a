"""Test-only PKI: a root CA (cryptography), leaf certificates from PKCS#10, an NSS db, an RFC 3161 TSA over HTTP.

Leaf certificates carry keyUsage digitalSignature+nonRepudiation and EKU emailProtection: pdfsig and
openssl reject a signer whose only EKU is documentSigning (DESIGN.md, verifier quirks).
"""

from __future__ import annotations

import datetime as dt
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Signet Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class TestCA:
    """A self-signed EC P-256 root that issues leaf and TSA certificates."""

    __test__ = False  # not a pytest class

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    _serial: int = field(default=1000)

    @property
    def root_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def root_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(self, subject: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
        self._serial += 1
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH)
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )

    def issue_from_csr(self, csr_der: bytes, *, days: int = 365, eku: bool = True) -> bytes:
        """Leaf certificate (DER) for a PKCS#10 request: subject and SAN copied from the request."""
        csr = x509.load_der_x509_csr(csr_der)
        if not csr.is_signature_valid:
            raise ValueError("the certificate request's signature does not verify")
        b = self._builder(csr.subject, csr.public_key(), days).add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            b = b.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def issue_tsa(self, cn: str = "Signet Test TSA") -> tuple[bytes, rsa.RSAPrivateKey]:
        """A TSA certificate (critical EKU timeStamping) and its in-memory RSA key (pyHanko's dummy TSA is RSA-only)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            self._builder(_name(cn), key.public_key(), 365)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER), key


def make_ca(cn: str = "Signet Test Root CA") -> TestCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH)
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return TestCA(key, cert)


def make_nssdb(directory: Path, root_pem: bytes, nickname: str = "signet-root") -> Path:
    """An NSS database in ``directory`` trusting ``root_pem`` for S/MIME (what pdfsig checks)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = directory / f"{nickname}.pem"
    pem.write_bytes(root_pem)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{directory}", "-n", nickname, "-t", "CT,C,C", "-i", str(pem)],
                   check=True, capture_output=True)
    return directory


@dataclass(frozen=True)
class PdfsigVerdict:
    valid: bool
    total: bool
    trusted: bool
    text: str

    @property
    def ok(self) -> bool:
        return self.valid and self.total and self.trusted


def pdfsig(path: Path, nssdb: Path, *, ocsp: bool = True) -> PdfsigVerdict:
    """Run pdfsig and read its text: it exits 0 even when a signature is broken.  ``ocsp=False``: no online OCSP
    check by NSS (for files whose revocation data is embedded and judged by pyHanko instead)."""
    p = subprocess.run(["pdfsig", *([] if ocsp else ["-no-ocsp"]), "-nssdir", f"sql:{nssdb}", str(path)],
                       capture_output=True, text=True)
    text = p.stdout + p.stderr
    return PdfsigVerdict("Signature is Valid." in text, "Total document signed" in text,
                         "Certificate is Trusted." in text, text)


# -- RFC 3161 TSA --------------------------------------------------------------------------------


def dummy_timestamper(ca: TestCA):
    """pyHanko's in-process TSA with a certificate from ``ca``."""
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    der, key = ca.issue_tsa()
    pk = asn1_keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return DummyTimeStamper(tsa_cert=asn1_x509.Certificate.load(der), tsa_key=pk)


@contextmanager
def tsa_server(ca: TestCA) -> Iterator[str]:
    """An RFC 3161 TSA on http://127.0.0.1:PORT/ (a thread); yields its URL."""
    stamper = dummy_timestamper(ca)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                with lock:
                    resp = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
            except Exception:  # a bad request gets a 400, the server stays up
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(resp)))
            self.end_headers()
            self.wfile.write(resp)

        def log_message(self, *args) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()
