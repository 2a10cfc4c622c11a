"""TLS certificates issued by the server's TLS CA (a hierarchy apart from the signing one): the gRPC listeners'
certificate and the client certificates of operators, agents and signing stations.

Who a client is lives in one SAN URI, ``urn:signet:org:<org id>:role:<operator|agent|station>:subject:<id>``
(EKU clientAuth); the subject DN repeats it for people reading logs (O = org id, OU = role, CN = id).
Every TLS certificate is recorded in the CA tables (origin ``tls-server`` / ``tls-client``) so OCSP
and the CRL know it, its key can never be certified again, and revoking it locks the caller out at
once: the API layer looks the presented certificate up on every call (gRPC itself checks only the
chain, not revocation).

Why the TLS keys are software keys: grpc-python takes the server's private key as PEM bytes and has
no PKCS#11 engine hook, so the listener key cannot stay on the HSM.  It is a P-256 key in a file of
mode 0600 in a 0700 directory, used only for TLS session authentication (never to sign anything
durable), short-lived and revocable; the CA, OCSP, TSA, seal and audit keys stay on the HSM.
Likewise an agent's or operator's TLS key is a software key on their host (the signing key stays on
their token).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from asn1crypto import pem, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import CertificateSigningRequestBuilder, Name, NameAttribute
from cryptography.x509.oid import NameOID

from signet.durable import write_atomic

from .ca import db
from .ca import x509build as xb
from .ca.csr import check_csr
from .ca.errors import InvalidRequest, KeyAlreadyCertified
from .ca.profiles import Role
from .clock import Clock
from .identity.principal import Role as CallerRole
from .keys import ServerKeys
from .store import Store

ORIGIN_TLS_SERVER = "tls-server"
ORIGIN_TLS_CLIENT = "tls-client"
_URI = re.compile(r"^urn:signet:org:([A-Za-z0-9_.-]{1,64}):role:(operator|agent|station)"
                  r":subject:([A-Za-z0-9_.@-]{1,128})$")
_TLS_ROLES = (CallerRole.OPERATOR, CallerRole.AGENT, CallerRole.STATION)


@dataclass(frozen=True)
class Caller:
    """Who a client certificate names."""

    org_id: str
    role: CallerRole
    subject: str

    @property
    def uri(self) -> str:
        return f"urn:signet:org:{self.org_id}:role:{self.role.value}:subject:{self.subject}"

    @classmethod
    def parse(cls, uri: str) -> Caller | None:
        m = _URI.match(uri)
        return cls(m.group(1), CallerRole(m.group(2)), m.group(3)) if m else None

    def __post_init__(self) -> None:
        if self.role not in _TLS_ROLES or _URI.match(self.uri) is None:
            raise InvalidRequest("a client certificate names an organisation id, the role operator, agent or "
                                 "station, and a subject of letters, digits and _ . @ -")


def _issue(keys: ServerKeys, store: Store, clock: Clock, urls: xb.PkiUrls, *, spki_der: bytes, subject: x509.Name,
           sans: list[x509.GeneralName], purpose: str, validity: timedelta, origin: str,
           person_id: str | None) -> bytes:
    issuing = keys[Role.TLS_CA]
    key_hash = db.spki_hash(spki_der)
    if db.key_is_certified(store, key_hash):
        raise KeyAlreadyCertified("this TLS key already has a certificate; generate a new key")
    now = xb.whole_second(clock.now())
    issuing_cert = issuing.certificate
    not_after = min(now + validity, issuing_cert.not_valid_after)
    serial = xb.random_serial()
    der = xb.sign_certificate(
        keys.signer(Role.TLS_CA), serial=serial, issuer=issuing_cert.subject, subject=subject,
        subject_spki_der=spki_der, not_before=now - timedelta(minutes=5), not_after=not_after,
        extensions=[
            xb.basic_constraints(False), xb.key_usage("digital_signature"), xb.extended_key_usage(purpose),
            xb.subject_key_id(spki_der), xb.authority_key_id(issuing.public_key_der),
            xb.ext("subject_alt_name", sans),
            xb.authority_info_access(ocsp=None, ca_issuers=urls.ca_certificate(Role.TLS_CA.value)),
            xb.crl_distribution_point(urls.crl(Role.TLS_CA.value)),
        ],
    )
    db.insert(store, db.CertRecord(
        issuer_key_hash=db.spki_hash(issuing.public_key_der), serial=serial, origin=origin,
        subject=subject.human_friendly, person_id=person_id, key_hash=key_hash, not_before=now - timedelta(minutes=5),
        not_after=not_after, status="good", revocation_reason=None, revoked_at=None, der=der), now=now)
    return der


def issue_server_certificate(keys: ServerKeys, store: Store, clock: Clock, urls: xb.PkiUrls, spki_der: bytes,
                             names: Sequence[str], *, validity: timedelta, organisation: str) -> bytes:
    """serverAuth certificate for the gRPC listeners, valid for ``names`` (DNS names and IP addresses)."""
    sans = []
    for name in names:
        try:
            sans.append(x509.GeneralName(name="ip_address", value=str(ipaddress.ip_address(name))))
        except ValueError:
            sans.append(x509.GeneralName(name="dns_name", value=name))
    subject = xb.build_name([("organization_name", organisation), ("common_name", names[0])])
    return _issue(keys, store, clock, urls, spki_der=spki_der, subject=subject, sans=sans, purpose="server_auth",
                  validity=validity, origin=ORIGIN_TLS_SERVER, person_id=None)


def issue_client_certificate(keys: ServerKeys, store: Store, clock: Clock, urls: xb.PkiUrls, csr_der: bytes,
                             caller: Caller, *, validity: timedelta) -> bytes:
    """clientAuth certificate naming ``caller``, for the key of a PKCS#10 request (checked here)."""
    request = check_csr(csr_der)
    subject = xb.build_name([("organization_name", caller.org_id), ("organizational_unit_name", caller.role.value),
                             ("common_name", caller.subject)])
    sans = [x509.GeneralName(name="uniform_resource_identifier", value=caller.uri)]
    return _issue(keys, store, clock, urls, spki_der=request.spki_der, subject=subject, sans=sans,
                  purpose="client_auth", validity=validity, origin=ORIGIN_TLS_CLIENT,
                  person_id=caller.subject if caller.role is CallerRole.AGENT else None)


def caller_of(cert_der: bytes) -> Caller | None:
    """The caller named by a client certificate's SAN URI (None when it names none or several)."""
    cert = x509.Certificate.load(cert_der)
    san = cert.subject_alt_name_value
    uris = [g.native for g in san if g.name == "uniform_resource_identifier"] if san is not None else []
    callers = [c for c in (Caller.parse(u) for u in uris) if c is not None]
    return callers[0] if len(callers) == 1 else None


# --- software TLS keys and PEM files ---

def new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def spki_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def tls_csr(key: ec.EllipticCurvePrivateKey, common_name: str = "signet tls client") -> bytes:
    """A PKCS#10 request for a software TLS key (only its key is used by the CA)."""
    builder = CertificateSigningRequestBuilder().subject_name(Name([NameAttribute(NameOID.COMMON_NAME, common_name)]))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def certs_pem(*ders: bytes) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", d) for d in ders)


def write_file(path: Path, data: bytes, mode: int = 0o644, *, overwrite: bool = False) -> None:
    """Write atomically with ``mode`` from the start (a key is never briefly world-readable).

    Without ``overwrite`` an existing file is an error: TLS material is never replaced silently.
    """
    write_atomic(path, data, mode, overwrite=overwrite)
