"""Certificate profiles: who the subject is and which extensions each kind of certificate carries.

End-entity (signer) certificates follow ETSI EN 319 412-1/-2 for natural persons: CN = legal
name, serialNumber = a semantics identifier (``IDCCN-…``) or a pseudonymous one by policy,
O = organisation.  Their EKU always includes emailProtection, because pdfsig and openssl reject a
certificate whose only EKU is documentSigning; documentSigning is an optional addition.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asn1crypto import x509

from formats.policy import (
    DEFAULT_REMOTE_POLICY,
    DEFAULT_SEAL_POLICY,
    DEFAULT_SIGNING_POLICY,
    DEFAULT_TSA_POLICY,
    SIGNING_ROOT_MARKER,
    TLS_ROOT_MARKER,
)

from . import x509build as xb
from .errors import InvalidRequest

# ETSI EN 319 412-1 5.1.3 natural-person identity type references
DOCUMENT_PREFIXES = {"id_card": "IDC", "passport": "PAS", "personal_number": "PNO", "tax_id": "TIN"}
PSEUDONYM_PREFIX = "PSE"


class SerialPolicy(enum.Enum):
    """What goes into the subject serialNumber: the document identifier, or a stable pseudonym."""

    DOCUMENT = "document"
    PSEUDONYM = "pseudonym"


def semantics_identifier(document_type: str, country: str, document_number: str) -> str:
    """``IDCCN-11010519491231002X``: type reference, issuing country, hyphen, identifier."""
    prefix = DOCUMENT_PREFIXES.get(document_type)
    if prefix is None:
        raise InvalidRequest(f"document type {document_type!r} has no ETSI identifier; use one of "
                             + ", ".join(sorted(DOCUMENT_PREFIXES)))
    if not re.match(r"^[A-Z]{2}$", country):
        raise InvalidRequest(f"country {country!r} must be an ISO 3166 two-letter code")
    if not re.match(r"^[A-Za-z0-9]{1,40}$", document_number):
        raise InvalidRequest("the document number must be 1 to 40 letters or digits to appear in a certificate")
    return f"{prefix}{country}-{document_number.upper()}"


def pseudonymous_identifier(country: str, keyed_hash: bytes) -> str:
    """``PSECN-<26 base32 chars>`` derived from a keyed hash of the person's document (stable, unlinkable)."""
    if not re.match(r"^[A-Z]{2}$", country):
        raise InvalidRequest(f"country {country!r} must be an ISO 3166 two-letter code")
    if len(keyed_hash) < 16:
        raise InvalidRequest("a pseudonym needs a keyed hash of at least 16 bytes")
    token = base64.b32encode(hashlib.sha256(b"signet-pseudonym\0" + keyed_hash).digest()).decode()[:26]
    return f"{PSEUDONYM_PREFIX}{country}-{token}"


@dataclass(frozen=True)
class SubjectIdentity:
    """The verified identity a certificate binds a key to."""

    legal_name: str
    serial_number: str  # from semantics_identifier() or pseudonymous_identifier()
    organisation: str
    country: str | None = None
    emails: tuple[str, ...] = ()

    def name(self) -> x509.Name:
        attrs = [("country_name", self.country)] if self.country else []
        attrs += [("organization_name", self.organisation), ("common_name", self.legal_name),
                  ("serial_number", self.serial_number)]
        return xb.build_name(attrs)


@dataclass(frozen=True)
class LeafProfile:
    """Issuance policy for signer certificates."""

    validity: timedelta = timedelta(days=730)
    document_signing: bool = False  # add id-kp-documentSigning next to emailProtection
    policy_oids: tuple[str, ...] = (DEFAULT_SIGNING_POLICY,)  # every signer certificate carries its policy
    serial_policy: SerialPolicy = SerialPolicy.DOCUMENT

    def __post_init__(self) -> None:
        if self.validity <= timedelta(0):
            raise ValueError("certificate validity must be positive")
        if not self.policy_oids:
            raise ValueError("a signer certificate needs its signing policy: verifiers require it")
        for oid in self.policy_oids:
            if not re.match(r"^[0-2](\.\d+)+$", oid):
                raise ValueError(f"{oid!r} is not a dotted OID")


def leaf_extensions(spki: bytes, issuer_spki: bytes, urls: xb.PkiUrls, issuing_ca: str,
                    profile: LeafProfile, emails: Sequence[str] = ()) -> list[dict[str, Any]]:
    purposes = ["email_protection"] + ([xb.DOCUMENT_SIGNING] if profile.document_signing else [])
    exts = [
        xb.basic_constraints(False),
        xb.key_usage("digital_signature", "non_repudiation"),
        xb.extended_key_usage(*purposes),
        xb.subject_key_id(spki),
        xb.authority_key_id(issuer_spki),
        xb.authority_info_access(ocsp=urls.ocsp, ca_issuers=urls.ca_certificate(issuing_ca)),
        xb.crl_distribution_point(urls.crl(issuing_ca)),
    ]
    if emails:
        exts.append(xb.email_san(emails))
    if profile.policy_oids:
        exts.append(xb.certificate_policies(*profile.policy_oids))
    return exts


class Role(enum.Enum):
    """The server's keys; the value names the key (label ``signet-<value>``) and its files in URLs.

    Two hierarchies, one per purpose: the signing root certifies the signing CA, which certifies token
    signing keys, remote-signing keys, the seal, the OCSP responder, the TSA and the audit key; the TLS
    root certifies the TLS CA, which certifies the server's listeners and the agents' and operators'
    TLS client keys (software keys).  No TLS certificate ever chains to the signing root.
    """

    SIGNING_ROOT = "signing-root"
    SIGNING_CA = "signing-ca"
    TLS_ROOT = "tls-root"
    TLS_CA = "tls-ca"
    OCSP = "ocsp"
    TSA = "tsa"
    SEAL = "seal"
    AUDIT = "audit"


ISSUER: dict[Role, Role] = {Role.SIGNING_ROOT: Role.SIGNING_ROOT, Role.SIGNING_CA: Role.SIGNING_ROOT,
                            Role.TLS_ROOT: Role.TLS_ROOT, Role.TLS_CA: Role.TLS_ROOT}
for _service in (Role.OCSP, Role.TSA, Role.SEAL, Role.AUDIT):
    ISSUER[_service] = Role.SIGNING_CA
ROOTS = (Role.SIGNING_ROOT, Role.TLS_ROOT)
CERTIFICATION_AUTHORITIES = (Role.SIGNING_ROOT, Role.SIGNING_CA, Role.TLS_ROOT, Role.TLS_CA)

COMMON_NAMES = {Role.SIGNING_ROOT: "Signing Root CA", Role.SIGNING_CA: "Signing CA", Role.TLS_ROOT: "TLS Root CA",
                Role.TLS_CA: "TLS CA", Role.OCSP: "OCSP Responder", Role.TSA: "Time-Stamping Authority",
                Role.SEAL: "Platform Seal", Role.AUDIT: "Audit Log"}


@dataclass(frozen=True)
class PolicySet:
    """The certificate policies of the signing hierarchy (configurable: [ca] and [tsa] of server.toml)."""

    signing: str = DEFAULT_SIGNING_POLICY
    remote: str = DEFAULT_REMOTE_POLICY
    seal: str = DEFAULT_SEAL_POLICY
    tsa: str = DEFAULT_TSA_POLICY

    @property
    def signature_policies(self) -> tuple[str, ...]:
        """Policies under which a certificate may make a valid signature (listed in the signing root)."""
        return (self.signing, self.remote, self.seal)


def server_extensions(role: Role, spki: bytes, issuer_spki: bytes, urls: xb.PkiUrls,
                      policies: PolicySet | None = None) -> list[dict[str, Any]]:
    """Extensions of the server's own certificates (roots self-signed, CAs by their root, the rest by the
    signing CA).  The roots list their hierarchy's marker and policies: verifiers read them there."""
    policies = policies or PolicySet()
    if role is Role.SIGNING_ROOT:
        return [xb.basic_constraints(True), xb.key_usage("key_cert_sign", "crl_sign"), xb.subject_key_id(spki),
                xb.certificate_policies(SIGNING_ROOT_MARKER, *policies.signature_policies)]
    if role is Role.TLS_ROOT:
        return [xb.basic_constraints(True), xb.key_usage("key_cert_sign", "crl_sign"), xb.subject_key_id(spki),
                xb.certificate_policies(TLS_ROOT_MARKER)]
    parent = ISSUER[role]
    common = [xb.subject_key_id(spki), xb.authority_key_id(issuer_spki)]
    revocation = [xb.crl_distribution_point(urls.crl(parent.value)),
                  xb.authority_info_access(ocsp=None if parent in ROOTS else urls.ocsp,
                                           ca_issuers=urls.ca_certificate(parent.value))]
    if role is Role.SIGNING_CA:
        return [xb.basic_constraints(True, 0), xb.key_usage("key_cert_sign", "crl_sign"), *common, *revocation,
                xb.certificate_policies(*policies.signature_policies, policies.tsa)]
    if role is Role.TLS_CA:
        return [xb.basic_constraints(True, 0), xb.key_usage("key_cert_sign", "crl_sign"), *common, *revocation]
    if role is Role.OCSP:
        # RFC 6960 4.2.2.2.1: responder certificates with ocsp-nocheck are not themselves checked
        return [xb.basic_constraints(False), xb.key_usage("digital_signature"),
                xb.extended_key_usage("ocsp_signing"), xb.ocsp_no_check(), *common,
                xb.authority_info_access(ocsp=None, ca_issuers=urls.ca_certificate(parent.value))]
    if role is Role.TSA:
        # RFC 3161 2.3: the timeStamping EKU is the only one, and critical
        return [xb.basic_constraints(False), xb.key_usage("digital_signature", "non_repudiation"),
                xb.extended_key_usage("time_stamping", critical=True), *common, *revocation,
                xb.certificate_policies(policies.tsa)]
    if role is Role.SEAL:
        return [xb.basic_constraints(False), xb.key_usage("digital_signature", "non_repudiation"),
                xb.extended_key_usage("email_protection", xb.DOCUMENT_SIGNING), *common, *revocation,
                xb.certificate_policies(policies.seal)]
    return [xb.basic_constraints(False), xb.key_usage("digital_signature"), *common, *revocation]
