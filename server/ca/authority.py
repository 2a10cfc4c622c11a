"""The signing CA: certificates from PKCS#10 requests for verified people, and revocation by serial.

The caller (enrollment) has already checked that the person is verified and the one-time code;
this module checks the request itself, refuses a key that was ever certified, and signs on the HSM.

Issuing and revoking are leaves of the audit log (:mod:`server.audit`), appended in the transaction that records
them: ``certificate.issued`` and ``certificate.revoked``, subject the serial (lowercase hex), the payload naming the
issuer by its key hash and never the certificate's subject (no names or e-mail addresses in the log).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import audit
from ..clock import Clock, to_text
from ..store import Store
from . import db
from . import x509build as xb
from .csr import check_csr
from .errors import AlreadyRevoked, CertificateNotFound, InvalidRequest, KeyAlreadyCertified
from .profiles import LeafProfile, Role, SubjectIdentity, leaf_extensions

if TYPE_CHECKING:
    from ..keys import ServerKeys

log = logging.getLogger(__name__)

# RFC 5280 5.3.1 reasons an operator or holder may give; revocation here is final, so no
# certificateHold / removeFromCRL.
REVOCATION_REASONS = ("unspecified", "key_compromise", "affiliation_changed", "superseded",
                      "cessation_of_operation", "privilege_withdrawn")


@dataclass(frozen=True)
class IssuedCertificate:
    serial: int
    der: bytes
    chain: tuple[bytes, ...]  # issuing CA, root CA

    @property
    def serial_hex(self) -> str:
        return db.serial_text(self.serial)


class CertificateAuthority:
    """Issues and revokes end-entity certificates under the server's issuing CA."""

    def __init__(self, keys: ServerKeys, store: Store, clock: Clock, urls: xb.PkiUrls,
                 profile: LeafProfile | None = None, *, rng: xb.Rng = os.urandom) -> None:
        self.keys = keys
        self.store = store
        self.clock = clock
        self.urls = urls
        self.profile = profile or LeafProfile()
        self._rng = rng
        self._issuing = keys[Role.SIGNING_CA]
        self.issuer_key_hash = db.spki_hash(self._issuing.public_key_der)
        # TLS client and server certificates come from the TLS CA; they are revoked through this authority too
        self.tls_issuer_key_hash = db.spki_hash(keys[Role.TLS_CA].public_key_der)
        db.migrate(store)

    @property
    def chain(self) -> tuple[bytes, ...]:
        return (self.keys.certificate_der(Role.SIGNING_CA), self.keys.certificate_der(Role.SIGNING_ROOT))

    def issue(self, csr_der: bytes, identity: SubjectIdentity, person_id: str, *,
              validity: timedelta | None = None, policy_oids: tuple[str, ...] = ()) -> IssuedCertificate:
        """Check the request, refuse a key certified before, sign the certificate on the HSM, record it.

        ``policy_oids`` replaces the profile's certificate policies (remote-signing keys carry their own)."""
        profile = replace(self.profile, policy_oids=policy_oids) if policy_oids else self.profile
        request = check_csr(csr_der)
        key_hash = db.spki_hash(request.spki_der)
        if db.key_is_certified(self.store, key_hash):
            raise KeyAlreadyCertified(
                "this public key already has a certificate; generate a new key on the token and request again")
        subject = identity.name()
        now = xb.whole_second(self.clock.now())
        issuing_cert = self._issuing.certificate
        if now < issuing_cert.not_valid_before or now >= issuing_cert.not_valid_after:
            raise InvalidRequest("the issuing CA certificate is not valid now; renew the server keys")
        not_after = min(now + (validity or profile.validity), issuing_cert.not_valid_after)
        serial = xb.random_serial(self._rng)
        der = xb.sign_certificate(
            self.keys.signer(Role.SIGNING_CA), serial=serial, issuer=issuing_cert.subject, subject=subject,
            subject_spki_der=request.spki_der, not_before=now, not_after=not_after,
            extensions=leaf_extensions(request.spki_der, self._issuing.public_key_der, self.urls,
                                       Role.SIGNING_CA.value, profile, identity.emails),
        )
        # the UNIQUE key_hash turns a concurrent second request for the same key into KeyAlreadyCertified
        with self.store.transaction():
            db.insert(self.store, db.CertRecord(
                issuer_key_hash=self.issuer_key_hash, serial=serial, origin=db.ORIGIN_ISSUED,
                subject=subject.human_friendly, person_id=person_id, key_hash=key_hash, not_before=now,
                not_after=not_after, status="good", revocation_reason=None, revoked_at=None, der=der,
            ), now=now)
            audit.append(self.store, "certificate.issued", db.serial_text(serial), {
                "issuer_key_hash": self.issuer_key_hash, "key_hash": key_hash,
                "cert_sha256": hashlib.sha256(der).hexdigest(), "not_before": to_text(now),
                "not_after": to_text(not_after), "policy_oids": list(profile.policy_oids),
                "document_signing": profile.document_signing}, now)
        log.info("issued certificate %s (%s) for person %s", db.serial_text(serial), request.key_description,
                 person_id)
        return IssuedCertificate(serial, der, self.chain)

    def revoke(self, serial: int, reason: str = "unspecified", *, at: datetime | None = None) -> db.CertRecord:
        """Revoke an issued certificate; OCSP and the next CRL fetch reflect it at once."""
        if reason not in REVOCATION_REASONS:
            raise InvalidRequest(f"revocation reason {reason!r} is not one of {', '.join(REVOCATION_REASONS)}")
        rec = self.status(serial)
        if rec is None:
            raise CertificateNotFound(f"no certificate with serial {db.serial_text(serial)} from this CA")
        with self.store.transaction():
            # the time is taken under the write lock: CRL publication compares it with its own
            now = self.clock.now()
            when = xb.whole_second(at or now)
            if when > now or when < rec.not_before:
                raise InvalidRequest("the revocation time must lie between the certificate's start and now")
            if not db.mark_revoked(self.store, rec.issuer_key_hash, serial, reason, when, now):
                raise AlreadyRevoked(f"certificate {db.serial_text(serial)} is already revoked")
            audit.append(self.store, "certificate.revoked", db.serial_text(serial), {
                "issuer_key_hash": rec.issuer_key_hash, "reason": reason, "revoked_at": to_text(when)}, now)
        log.info("revoked certificate %s (%s)", db.serial_text(serial), reason)
        found = db.find(self.store, rec.issuer_key_hash, serial)
        if found is None:  # it was there a moment ago, inside this transaction's lock
            raise CertificateNotFound(f"certificate {db.serial_text(serial)} disappeared while being revoked")
        return found

    def status(self, serial: int) -> db.CertRecord | None:
        """A certificate of the signing CA, or else of the TLS CA, by serial."""
        return db.find(self.store, self.issuer_key_hash, serial) or db.find(self.store, self.tls_issuer_key_hash,
                                                                             serial)

    def certificates_of(self, person_id: str) -> list[db.CertRecord]:
        return db.for_person(self.store, person_id)

