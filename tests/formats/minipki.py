"""A small PKI for the formats tests: CAs whose certificates name a local OCSP responder and CRL server.

``RevocationServer`` is a real HTTP server (a thread) that answers RFC 6960 OCSP requests and serves DER
CRLs for every CA registered with it; tests revoke serials, or make the answers for one serial garbage, or
slow.  ``MiniCA`` issues roots, intermediate CAs, leaves (from PKCS#10 or a public key), TSA certificates
(the interface ``tests.pki.tsa_server`` uses), with or without certificatePolicies and revocation pointers.
``SoftToken`` is a software key behind the interface of ``hsm.Token`` that ``formats.TokenSigner`` uses:
the "software key" of the signing-policy tests.
"""

from __future__ import annotations

import datetime as dt
import http.server
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Signet Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _policies(oids: Sequence[str]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids])


_SIGNER_KU = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                           encipher_only=False, decipher_only=False)
_CA_KU = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False)


@dataclass
class _Answers:
    """What the responder says about one CA's certificates."""

    revoked: dict[int, dt.datetime] = field(default_factory=dict)
    garbage: set[int] = field(default_factory=set)  # serials whose OCSP answer is not DER
    slow: set[int] = field(default_factory=set)  # serials whose OCSP answer takes 3 s


class RevocationServer:
    """OCSP at ``/<ca>/ocsp`` and the CRL at ``/<ca>/crl`` for every registered CA, on 127.0.0.1."""

    def __init__(self) -> None:
        self.cas: dict[str, MiniCA] = {}
        self.answers: dict[str, _Answers] = {}
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout tests)
                    pass

            def do_GET(self) -> None:
                server.requests += 1
                slug, _, what = self.path.strip("/").partition("/")
                if what != "crl" or slug not in server.cas:
                    self._reply(404, b"", "text/plain")
                    return
                self._reply(200, server.cas[slug].crl(server.answers[slug]), "application/pkix-crl")

            def do_POST(self) -> None:
                server.requests += 1
                slug, _, what = self.path.strip("/").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if what != "ocsp" or slug not in server.cas:
                    self._reply(404, b"", "text/plain")
                    return
                self._reply(200, server.cas[slug].ocsp_answer(body, server.answers[slug]),
                            "application/ocsp-response")

            def log_message(self, *args: object) -> None:
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def register(self, ca: MiniCA) -> None:
        self.cas[ca.slug] = ca
        self.answers[ca.slug] = _Answers()

    def revoke(self, ca: MiniCA, serial: int, when: dt.datetime | None = None) -> None:
        self.answers[ca.slug].revoked[serial] = when or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join()


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/ocsp"


class MiniCA:
    """A CA (self-signed root, or issued by ``parent``) that registers with a RevocationServer."""

    def __init__(self, cn: str, server: RevocationServer | None, *, parent: MiniCA | None = None,
                 policies: Sequence[str] | None = None, not_after: dt.datetime | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.server = server
        self.slug = "".join(c for c in cn.lower() if c.isalnum()) + f"{id(self) % 100000}"
        self.parent = parent
        b = (x509.CertificateBuilder().subject_name(name(cn)).public_key(self.key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(EPOCH)
             .not_valid_after(not_after or dt.datetime.now(dt.UTC) + dt.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(_CA_KU, critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False))
        if policies is not None:
            b = b.add_extension(_policies(policies), critical=False)
        if parent is None:
            self.cert = b.issuer_name(name(cn)).sign(self.key, hashes.SHA256())
        else:
            b = b.issuer_name(parent.cert.subject)
            b = parent._pointers(b.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False))
            self.cert = b.sign(parent.key, hashes.SHA256())
        if server is not None:
            server.register(self)

    # -- the interface tests.pki.TestCA offers (root_der, root_pem, issue_from_csr, issue_tsa)

    @property
    def root_der(self) -> bytes:
        return der(self.cert)

    @property
    def root_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_der(self) -> list[bytes]:
        """This CA's certificate and its parents', up to the root."""
        out: list[bytes] = []
        ca: MiniCA | None = self
        while ca is not None:
            out.append(der(ca.cert))
            ca = ca.parent
        return out

    def _pointers(self, b: x509.CertificateBuilder, *, ocsp_url: str | None = None, ocsp_ok: bool = True,
                  crl: bool = True) -> x509.CertificateBuilder:
        """AIA (OCSP) and CRL distribution point extensions naming this CA's responder."""
        if self.server is None:
            return b
        if ocsp_ok:
            url = ocsp_url or f"{self.server.base}/{self.slug}/ocsp"
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]), critical=False)
        if crl:
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(f"{self.server.base}/{self.slug}/crl")], None, None, None)]),
                critical=False)
        return b

    def issue(self, subject: x509.Name, public_key: object, *, policies: Sequence[str] = (), eku: bool = True,
              pointers: bool = True, ocsp_url: str | None = None, crl: bool = True,
              not_before: dt.datetime = EPOCH, not_after: dt.datetime | None = None,
              san: x509.SubjectAlternativeName | None = None) -> bytes:
        """A signer certificate (keyUsage digitalSignature + nonRepudiation, EKU emailProtection)."""
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
             .not_valid_before(not_before)
             .not_valid_after(not_after or dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
             .add_extension(_SIGNER_KU, critical=True))
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        if policies:
            b = b.add_extension(_policies(policies), critical=False)
        if san is not None:
            b = b.add_extension(san, critical=False)
        if pointers:
            b = self._pointers(b, ocsp_url=ocsp_url, crl=crl)
        return der(b.sign(self.key, hashes.SHA256()))

    def issue_from_csr(self, csr_der: bytes, **kw: object) -> bytes:
        csr = x509.load_der_x509_csr(csr_der)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        return self.issue(csr.subject, csr.public_key(), san=san, **kw)  # type: ignore[arg-type]

    def issue_tsa(self, cn: str = "Signet Test TSA") -> tuple[bytes, rsa.RSAPrivateKey]:
        """A TSA certificate (critical EKU timeStamping) with revocation pointers, and its RSA key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(EPOCH)
             .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(_SIGNER_KU, critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True))
        return der(self._pointers(b).sign(self.key, hashes.SHA256())), key

    # -- what the RevocationServer serves

    def crl(self, answers: _Answers) -> bytes:
        now = dt.datetime.now(dt.UTC)
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=1)))
        for serial, when in answers.revoked.items():
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(when).build())
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_answer(self, request_der: bytes, answers: _Answers) -> bytes:
        req = ocsp.load_der_ocsp_request(request_der)
        if req.serial_number in answers.garbage:
            return b"this is not an OCSP response"
        if req.serial_number in answers.slow:
            time.sleep(3)
        now = dt.datetime.now(dt.UTC)
        revoked_at = answers.revoked.get(req.serial_number)
        status = ocsp.OCSPCertStatus.GOOD if revoked_at is None else ocsp.OCSPCertStatus.REVOKED
        b = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=req.issuer_name_hash, issuer_key_hash=req.issuer_key_hash,
            serial_number=req.serial_number, algorithm=req.hash_algorithm, cert_status=status,
            this_update=now - dt.timedelta(minutes=5), next_update=now + dt.timedelta(days=1),
            revocation_time=revoked_at, revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            b = b.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_response_for(self, cert_der: bytes) -> bytes:
        """An OCSP response about ``cert_der`` (issued by this CA), as a document would embed it."""
        cert = x509.load_der_x509_certificate(cert_der)
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, self.cert, hashes.SHA1()).build()  # noqa: S303
        return self.ocsp_answer(req.public_bytes(serialization.Encoding.DER),
                                self.server.answers[self.slug] if self.server else _Answers())


class SoftToken:
    """A software EC key behind the part of ``hsm.Token`` that TokenSigner uses (never a token key)."""

    label = "software"

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def key(self, key_id: str) -> _Key:
        return _Key(self.public_key.public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))

    def certificate(self, key_id: str) -> bytes | None:
        return None

    def chain(self, key_id: str) -> list[bytes]:
        return []

    def sign_digest(self, key_id: str, dgst: bytes, *, hash_name: str = "sha256") -> bytes:
        return self.private.sign(dgst, ec.ECDSA(Prehashed(_HASHES[hash_name])))


@dataclass(frozen=True)
class _Key:
    public_key_der: bytes


@contextmanager
def revocation_server() -> Iterator[RevocationServer]:
    srv = RevocationServer()
    try:
        yield srv
    finally:
        srv.close()


def token_certificate(token: object, key_id: str, ca: MiniCA, cn: str, **kw: object) -> bytes:
    """A certificate from ``ca`` for a key on a real token, requested by a PKCS#10 the token signed."""
    csr = token.create_csr(key_id, {"common_name": cn, "country_name": "CN"})  # type: ignore[attr-defined]
    return ca.issue_from_csr(csr, **kw)
