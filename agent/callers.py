"""Who is calling: the Unix socket's owner, or a mutual-TLS client named by its certificate -- never by CN alone.

On the Unix socket the caller is ``local`` (Python gRPC gives no peer credentials; the socket's 0600 mode in a
0700 directory is the access control).  Over TCP the caller is ``tls:<SAN URI>`` when the client certificate
carries exactly one URI (Signet's agent and operator certificates do: ``urn:signet:org:...``), else
``tls-sha256:<hex fingerprint of the certificate>``.  Common names are not unique and name nobody.

Before a TLS caller is served its certificate is checked against its CA's CRL (the distribution point in
the certificate), fetched with a timeout, verified against ``tcp.client_ca`` and cached until the next
refresh; ``tcp.revocation`` says what happens when a certificate names no CRL or the CRL cannot be had.
``tcp.client_ca`` must be a TLS CA: a Signet signing root or CA there is refused at start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from formats.policy import SIGNET_ARC, SIGNING_ROOT_MARKER
from signet.pemfiles import read_certificates

from .config import LOCAL_CALLER, Revocation, TlsConfig
from .errors import ClientCertRevoked, ConfigError, PermissionDenied, RevocationUnknown

log = logging.getLogger(__name__)

MAX_CRL_BYTES = 16 * 1024 * 1024


def _policies(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [p.policy_identifier.dotted_string for p in ext]


def load_client_cas(path: Path) -> list[x509.Certificate]:
    """The CA certificates of ``tcp.client_ca``; each must be a CA and none a Signet signing CA or root."""
    try:
        cas = [x509.load_der_x509_certificate(d) for d in read_certificates(path)]
    except (OSError, ValueError) as e:
        raise ConfigError(f"tcp.client_ca: {path} holds no readable certificate ({type(e).__name__})") from None
    for ca in cas:
        try:
            is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        name = ca.subject.rfc4514_string()
        if not is_ca:
            raise ConfigError(f"tcp.client_ca: {name} is not a CA certificate")
        policies = _policies(ca)
        if SIGNING_ROOT_MARKER in policies or any(p.startswith(SIGNET_ARC + ".1.") for p in policies):
            raise ConfigError(f"tcp.client_ca: {name} is a Signet signing CA; client certificates come from the "
                              "Signet TLS CA (signet-server's tls/ca.pem), never from the signing hierarchy")
    return cas


def identity(cert_der: bytes) -> str:
    """``tls:<SAN URI>`` or ``tls-sha256:<fingerprint>``."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) == 1:
        return "tls:" + uris[0]
    return "tls-sha256:" + hashlib.sha256(cert_der).hexdigest()


@dataclass
class _Crl:
    crl: x509.CertificateRevocationList
    fetched: float


class TlsClients:
    """Names and revocation-checks mutual-TLS callers."""

    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls
        self.cas = load_client_cas(tls.client_ca)
        self._crls: dict[str, _Crl] = {}
        self._lock = threading.Lock()

    def check(self, cert_der: bytes) -> None:
        """Raise PermissionDenied (revoked, no CRL when one is required) or RevocationUnknown (CRL unreachable)."""
        if self.tls.revocation is Revocation.OFF:
            return
        cert = x509.load_der_x509_certificate(cert_der)
        urls = _crl_urls(cert)
        if not urls:
            if self.tls.revocation is Revocation.REQUIRE:
                raise PermissionDenied("the client certificate names no CRL; this agent requires one "
                                       "(tcp.revocation = \"require\")")
            return
        crl = self._crl(urls[0], cert)
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            log.warning("refused a revoked client certificate (serial %x)", cert.serial_number)
            raise ClientCertRevoked("the client certificate is revoked")

    def _issuer(self, cert: x509.Certificate) -> x509.Certificate | None:
        return next((ca for ca in self.cas if ca.subject == cert.issuer), None)

    def _crl(self, url: str, cert: x509.Certificate) -> x509.CertificateRevocationList:
        now = time.monotonic()
        with self._lock:
            cached = self._crls.get(url)
        if cached is not None and now - cached.fetched < self.tls.crl_refresh_seconds and _current(cached.crl):
            return cached.crl
        try:
            with urllib.request.urlopen(url, timeout=self.tls.crl_timeout_seconds) as resp:  # noqa: S310 - http(s) CRL DP of a certificate our CA issued
                data = resp.read(MAX_CRL_BYTES + 1)
            crl = (x509.load_der_x509_crl(data) if not data.startswith(b"-----") else x509.load_pem_x509_crl(data))
        except (OSError, ValueError, urllib.error.URLError) as e:
            log.warning("CRL for client certificates unavailable (%s)", type(e).__name__)
            raise RevocationUnknown("the revocation of your client certificate cannot be checked now (its CRL is "
                                    "unavailable); try again later") from None
        issuer = self._issuer(cert)
        if issuer is None or crl.issuer != issuer.subject or not crl.is_signature_valid(
                issuer.public_key()):  # type: ignore[arg-type]  # CA keys are RSA or EC
            raise RevocationUnknown("the CRL for your client certificate is not signed by the agent's client CA")
        if not _current(crl):
            raise RevocationUnknown("the CRL for your client certificate is out of date")
        with self._lock:
            self._crls[url] = _Crl(crl, now)
        return crl


def _current(crl: x509.CertificateRevocationList) -> bool:
    nxt = crl.next_update_utc
    return nxt is None or nxt > dt.datetime.now(dt.UTC)


def _crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [n.value for p in points for n in (p.full_name or []) if isinstance(n, x509.UniformResourceIdentifier)
            and n.value.startswith(("http://", "https://"))]


def caller_of(context: grpc.ServicerContext, clients: TlsClients | None) -> str:
    """``local`` on the Unix socket; a checked TLS identity over mutual TLS; PermissionDenied otherwise."""
    auth = cast(Mapping[str, list[bytes]], context.auth_context())  # the stubs say bytes; grpc gives lists
    if auth.get("transport_security_type") == [b"ssl"]:
        pems = auth.get("x509_pem_cert") or []
        if not pems or clients is None:
            raise PermissionDenied("a client certificate is required")
        der = x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)
        clients.check(der)
        return identity(der)
    if context.peer().startswith("unix:"):
        return LOCAL_CALLER
    raise PermissionDenied("only Unix-socket and mutual-TLS callers are served")
