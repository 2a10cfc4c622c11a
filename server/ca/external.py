"""Registering a certificate issued by another CA for a person, after validating its chain.

The chain must end in one of the configured external roots (never in our own CAs: those issue
through :class:`server.ca.CertificateAuthority`), be valid now, and the certificate must be an
end-entity signing certificate.  The key must never have been certified here before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathError, ValidationError

from ..clock import Clock
from ..store import Store
from . import db
from . import x509build as xb
from .errors import ChainInvalid, KeyAlreadyCertified

log = logging.getLogger(__name__)

MAX_CHAIN = 8


@dataclass(frozen=True)
class ExternalRoots:
    """Trust anchors for externally issued certificates, and how strictly to check revocation."""

    certificates: tuple[bytes, ...]
    revocation_mode: str = "soft-fail"  # pyhanko-certvalidator: soft-fail | hard-fail | require
    allow_fetching: bool = False  # fetch CRLs/OCSP over the network while validating

    def __post_init__(self) -> None:
        if self.revocation_mode not in ("soft-fail", "hard-fail", "require"):
            raise ValueError(f"unknown revocation mode {self.revocation_mode!r}")


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        cert = x509.Certificate.load(der, strict=True)
        _ = cert.native  # every field read now: asn1crypto parses lazily, and path validation reads them all
        return cert
    except xb.ASN1_ERRORS as e:
        raise ChainInvalid(f"the {what} is not a DER X.509 certificate") from e


def register_external(store: Store, person_id: str, cert_der: bytes, intermediates: Sequence[bytes],
                      roots: ExternalRoots, clock: Clock) -> db.CertRecord:
    """Validate ``cert_der`` up to an external root and record it for ``person_id``."""
    if not roots.certificates:
        raise ChainInvalid("no external roots are configured: externally issued certificates cannot be registered")
    if len(intermediates) > MAX_CHAIN:
        raise ChainInvalid(f"at most {MAX_CHAIN} intermediate certificates are accepted")
    cert = _load(cert_der, "certificate")
    others = [_load(d, "intermediate certificate") for d in intermediates]
    if cert.ca or (cert.basic_constraints_value is not None and cert.basic_constraints_value["ca"].native):
        raise ChainInvalid("a CA certificate cannot be registered as a person's signing certificate")
    usage = cert.key_usage_value.native if cert.key_usage_value is not None else set()
    if cert.key_usage_value is not None and not {"digital_signature", "non_repudiation"} & set(usage):
        raise ChainInvalid("the certificate's key usage allows neither digital signatures nor non-repudiation")
    now = clock.now()
    context = ValidationContext(
        trust_roots=[_load(r, "external root") for r in roots.certificates], other_certs=others, moment=now,
        allow_fetching=roots.allow_fetching, revocation_mode=roots.revocation_mode,
    )
    try:
        path = asyncio.run(CertificateValidator(cert, others, context).async_validate_path())
    except (PathError, ValidationError) as e:
        log.info("external certificate refused: %s", type(e).__name__)
        raise ChainInvalid(f"the certificate does not validate against the configured external roots: "
                           f"{_reason(e)}") from e
    key_hash = db.spki_hash(cert.public_key.dump())
    if db.key_is_certified(store, key_hash):
        raise KeyAlreadyCertified("this public key already has a certificate registered or issued here")
    issuer = path[len(path) - 2] if len(path) >= 2 else cert  # pyHanko paths run root ... leaf
    rec = db.CertRecord(
        issuer_key_hash=db.spki_hash(issuer.public_key.dump()), serial=cert.serial_number,
        origin=db.ORIGIN_EXTERNAL, subject=cert.subject.human_friendly, person_id=person_id, key_hash=key_hash,
        not_before=cert.not_valid_before, not_after=cert.not_valid_after, status="good", revocation_reason=None,
        revoked_at=None, der=cert_der,
    )
    db.insert(store, rec, now=now)
    log.info("registered external certificate %s (sha256 %s) for person %s", db.serial_text(cert.serial_number),
             hashlib.sha256(cert_der).hexdigest()[:16], person_id)
    return rec


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:300]
