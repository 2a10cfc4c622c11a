"""Is my own signing certificate still good?  Asked of its CA's OCSP responder before the token signs.

A signature made with a revoked certificate is worthless to every relying party, so the agent asks the
responder named in the certificate (AIA) before it lets the token sign, and refuses with
CERTIFICATE_REVOKED when the answer is "revoked" -- the token is never asked.  A "good" answer is cached until
its nextUpdate (at most ``max_cache_seconds``).  When no status can be had (no responder named, unreachable,
an answer that does not verify) the signature goes ahead unless ``verify.unknown_status = "refuse"``: that is
what a verifier will report as "revocation unknown" for itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from signet.pubkeys import signature_ok

from .errors import CertificateRevoked, RevocationUnknown

log = logging.getLogger(__name__)

MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True)
class Status:
    state: str  # good | revoked | unknown
    why: str = ""


def _ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                desc.access_location, x509.UniformResourceIdentifier):
            return desc.access_location.value
    return None


def _responder_key(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> object | None:
    """The issuer itself, or a delegated responder certificate it issued with the OCSPSigning EKU."""
    if signature_ok(issuer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm):
        return issuer.public_key()
    for cert in resp.certificates:
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and signature_ok(cert.public_key(), resp.signature,
                                                               resp.tbs_response_bytes, resp.signature_hash_algorithm):
            return cert.public_key()
    return None


class OwnCertificateStatus:
    """OCSP status of signing certificates, cached per serial."""

    def __init__(self, *, timeout: float = 5.0, max_cache_seconds: float = 300.0, refuse_unknown: bool = False) -> None:
        self.timeout = timeout
        self.max_cache = dt.timedelta(seconds=max_cache_seconds)
        self.refuse_unknown = refuse_unknown
        self._good: dict[tuple[bytes, int], dt.datetime] = {}
        self._lock = threading.Lock()

    def require_good(self, cert_der: bytes, chain: list[bytes]) -> None:
        """Raise CertificateRevoked (or RevocationUnknown when so configured) before a signature."""
        cert = x509.load_der_x509_certificate(cert_der)
        key = (cert.fingerprint(hashes.SHA256()), cert.serial_number)
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            until = self._good.get(key)
        if until is not None and until > now:
            return
        status = self.status(cert, chain)
        if status.state == "revoked":
            log.warning("refused to sign: certificate %x is revoked", cert.serial_number)
            raise CertificateRevoked(f"the signing certificate (serial {cert.serial_number:x}) is revoked; the token "
                                     "was not asked to sign. Enroll a new key")
        if status.state == "unknown":
            log.warning("revocation status of certificate %x unknown: %s", cert.serial_number, status.why)
            if self.refuse_unknown:
                raise RevocationUnknown(f"the revocation status of the signing certificate is unknown ({status.why})")
            return
        with self._lock:
            self._good[key] = until or now

    def status(self, cert: x509.Certificate, chain: list[bytes]) -> Status:
        url = _ocsp_url(cert)
        if url is None or not url.startswith(("http://", "https://")):
            return Status("unknown", "the certificate names no OCSP responder")
        issuer = next((c for c in (x509.load_der_x509_certificate(d) for d in chain) if c.subject == cert.issuer), None)
        if issuer is None:
            return Status("unknown", "the issuer certificate is not on the token")
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 6960 CertID
        http = urllib.request.Request(url, data=req.public_bytes(Encoding.DER),  # noqa: S310 - http(s) only, above
                                      headers={"Content-Type": "application/ocsp-request"})
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as r:  # noqa: S310 - the AIA of our own certificate
                resp = ocsp.load_der_ocsp_response(r.read(MAX_RESPONSE))
        except (OSError, ValueError, urllib.error.URLError) as e:
            return Status("unknown", f"the OCSP responder did not answer ({type(e).__name__})")
        problem = _unusable(resp, cert, issuer)
        if problem is not None:
            return Status("unknown", problem)
        if resp.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            return Status("revoked")
        if resp.certificate_status is ocsp.OCSPCertStatus.GOOD:
            nxt = resp.next_update_utc
            now = dt.datetime.now(dt.UTC)
            with self._lock:
                self._good[(cert.fingerprint(hashes.SHA256()), cert.serial_number)] = min(
                    nxt or now + self.max_cache, now + self.max_cache)
            return Status("good")
        return Status("unknown", "the OCSP responder does not know the certificate")


def _unusable(resp: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """Why an OCSP answer says nothing about ``cert`` (None: it does)."""
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"the OCSP responder answered {resp.response_status.name}"
    if _responder_key(resp, issuer) is None:
        return "the OCSP answer is not signed by the certificate's CA"
    if resp.serial_number != cert.serial_number:
        return "the OCSP answer is about another certificate"
    return None
