"""Enrollment: binding a token key to a verified person with a fresh one-time code.

The caller has no client certificate yet; it is authenticated by the person id and a one-time code of 8 digits
sent to the person's verified phone (purpose ``enroll``, bound to the person and that phone), named by its
``code_id``.  Wrong codes are counted per person: after ``max_failures_per_day`` within 24 hours enrollment is
locked for that person (an evidence record says so) until an operator unlocks it, with evidence of their own.
Checks, in this order (so a malformed request never burns the code): the person is approved and
the phone verified; both PKCS#10 requests are well-formed, self-signed and carry keys never
certified here; the code is fresh, unused and correct; then the CA issues the signing certificate
(CN = legal name, serialNumber = ETSI semantics identifier or a pseudonym by policy, O = the
organisation's name) and, when asked, the agent's TLS client certificate.  Both issuances and the
code are recorded in the person's evidence chain.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from asn1crypto import x509

from .ca import CertificateAuthority, SerialPolicy, SubjectIdentity, pseudonymous_identifier
from .ca import db as ca_db
from .ca.csr import check_csr
from .ca.errors import InvalidRequest, KeyAlreadyCertified
from .clock import Clock, to_text
from .errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from .identity import IdentityService, Principal, Role, Status
from .identity import evidence as chain
from .keys import ServerKeys
from .notify.message import Address, Channel
from .otp import Challenge, send_code
from .sealing import derive_key, keyed_hash
from .store import Store
from .tls import Caller, issue_client_certificate

log = logging.getLogger(__name__)

ENROLL_PURPOSE = "enroll"
ENROLL_DIGITS = 8


def _v1(store: Store) -> None:
    store.execute("CREATE TABLE enrollment_failures (id TEXT PRIMARY KEY, person_id TEXT NOT NULL, "
                  "at TEXT NOT NULL, reason TEXT NOT NULL)")
    store.execute("CREATE INDEX enrollment_failures_person ON enrollment_failures (person_id, at)")
    store.execute("CREATE TABLE enrollment_locks (person_id TEXT PRIMARY KEY, locked_at TEXT NOT NULL, "
                  "failures INTEGER NOT NULL)")


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class Enrolled:
    serial: int
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    agent_certificate_der: bytes | None


class Enrollment:
    def __init__(self, identity: IdentityService, ca: CertificateAuthority, keys: ServerKeys, store: Store,
                 clock: Clock, notifier: Channel, *, hmac_key: bytes,
                 serial_policy: SerialPolicy = SerialPolicy.DOCUMENT,
                 client_validity: timedelta = timedelta(days=365), max_failures_per_day: int = 5) -> None:
        self.identity, self.ca, self.keys, self.store, self.clock = identity, ca, keys, store, clock
        self.notifier = notifier
        self.serial_policy = serial_policy
        self.client_validity = client_validity
        self.max_failures_per_day = max_failures_per_day
        self._pseudonym_key = derive_key(hmac_key, "ca/pseudonym")
        store.migrate("enrollment", MIGRATIONS)

    @staticmethod
    def _binding(person_id: str, phone: str) -> str:
        return f"{person_id}|{phone}"

    def _self(self, person_id: str) -> tuple[Principal, str]:
        """The person acting through their (future) agent, and their verified phone; checks the person's state."""
        me = Principal(self.identity.org_of(person_id), person_id, Role.AGENT)
        person = self.identity.get_person(me, person_id)
        if not person.phone_verified:
            raise FailedPrecondition("the person's phone must be verified before enrollment",
                                     reason="PHONE_NOT_VERIFIED")
        if person.status is not Status.APPROVED:
            raise FailedPrecondition("the person's real-name verification is not approved", reason="NOT_APPROVED")
        return me, person.phone

    def _refuse_if_locked(self, person_id: str) -> None:
        if self.store.query_one("SELECT person_id FROM enrollment_locks WHERE person_id = ?", (person_id,)):
            raise FailedPrecondition("enrollment is locked for this person after too many wrong codes; an operator "
                                     "of the organisation must unlock it", reason="ENROLLMENT_LOCKED")

    def _failed(self, me: Principal, person_id: str, reason: str) -> bool:
        """Count one wrong code; lock enrollment (and say so in the evidence) at the daily cap. True when locked."""
        now = self.clock.now()
        with self.store.transaction():
            self.store.insert("enrollment_failures", {"id": "ef_" + secrets.token_hex(12), "person_id": person_id,
                                                      "at": to_text(now), "reason": reason})
            row = self.store.query_one("SELECT COUNT(*) AS n FROM enrollment_failures WHERE person_id = ? AND at > ?",
                                       (person_id, to_text(now - timedelta(days=1))))
            failures = int(row["n"]) if row else 0
            if failures < self.max_failures_per_day:
                return False
            if self.store.query_one("SELECT person_id FROM enrollment_locks WHERE person_id = ?", (person_id,)):
                return True
            self.store.insert("enrollment_locks", {"person_id": person_id, "locked_at": to_text(now),
                                                   "failures": failures})
            chain.append(self.store, person_id=person_id, org_id=me.org_id, kind="enrollment_locked", at=now,
                         actor="server", provider="enrollment", reference="",
                         detail={"failures_in_24h": failures, "limit": self.max_failures_per_day})
        log.warning("enrollment locked for person %s after %d wrong codes in 24 h", person_id, failures)
        return True

    def unlock(self, operator: Principal, person_id: str, evidence: str) -> None:
        """An operator of the person's organisation lifts the enrollment lock, saying why (evidence record)."""
        if not operator.is_operator:
            raise PermissionDenied("only an operator of the organisation may unlock enrollment")
        if not evidence.strip():
            raise InvalidArgument("say why enrollment is unlocked (evidence text)", reason="EVIDENCE_REQUIRED")
        self.identity.get_person(operator, person_id)  # NotFound across organisations
        now = self.clock.now()
        with self.store.transaction():
            if self.store.execute("DELETE FROM enrollment_locks WHERE person_id = ?", (person_id,)) != 1:
                raise FailedPrecondition("enrollment is not locked for this person", reason="NOT_LOCKED")
            self.store.execute("DELETE FROM enrollment_failures WHERE person_id = ?", (person_id,))
            chain.append(self.store, person_id=person_id, org_id=operator.org_id, kind="enrollment_unlocked", at=now,
                         actor=f"operator:{operator.subject}", provider="operator", reference="",
                         detail={"evidence": evidence, **({"via": operator.via} if operator.via else {})})
        log.info("enrollment of person %s unlocked by operator %s", person_id, operator.subject)

    def start(self, person_id: str) -> Challenge:
        """Send an enrollment code to the person's verified phone (rate limited per phone)."""
        me, phone = self._self(person_id)
        self._refuse_if_locked(person_id)
        challenge = send_code(
            self.identity.codes, self.notifier, purpose=ENROLL_PURPOSE, binding=self._binding(person_id, phone),
            digits=ENROLL_DIGITS, to=Address.phone(phone), subject="Signet enrollment code",
            text=lambda code, minutes: (f"Your Signet enrollment code is {code}. It expires in {minutes} minutes. "
                                        "Enter it only in your own Signet agent; Signet staff will not ask for it."),
        )
        chain.append(self.store, person_id=person_id, org_id=me.org_id, kind="enrollment_code_sent",
                     at=self.clock.now(), actor=f"agent:{person_id}", provider=challenge.delivery.channel,
                     reference=challenge.code_id,
                     detail={"code_id": challenge.code_id, "expires_at": to_text(challenge.expires_at)})
        return challenge

    def _new_key(self, csr_der: bytes, what: str) -> bytes:
        spki = check_csr(csr_der).spki_der
        if ca_db.key_is_certified(self.store, ca_db.spki_hash(spki)):
            raise KeyAlreadyCertified(f"the {what} key already has a certificate; generate a new key and request again")
        return spki

    def _serial_number(self, me: Principal, person_id: str) -> tuple[str, str]:
        doc = self.identity.reveal_document(me, person_id)
        semantic = doc.semantics_identifier()
        if self.serial_policy is SerialPolicy.DOCUMENT and semantic:
            return semantic, doc.country
        digest = bytes.fromhex(keyed_hash(self._pseudonym_key, doc.type, doc.country, doc.number))
        return pseudonymous_identifier(doc.country, digest), doc.country

    def _subject(self, me: Principal, person_id: str) -> SubjectIdentity:
        person = self.identity.get_person(me, person_id)
        serial_number, country = self._serial_number(me, person_id)
        return SubjectIdentity(person.legal_name, serial_number, self.identity.get_organisation(me).name, country,
                               (person.email,) if person.email.isascii() else ())

    def subject_identity(self, person_id: str) -> SubjectIdentity:
        """The verified identity a signing certificate of ``person_id`` names -- the same for a key on their own
        token and a remote key on the server token (FAILED_PRECONDITION unless approved, phone verified)."""
        me, _ = self._self(person_id)
        return self._subject(me, person_id)

    def enroll(self, person_id: str, code: str, csr_der: bytes, agent_tls_csr_der: bytes = b"",
               code_id: str | None = None) -> Enrolled:
        if not code_id:
            raise InvalidArgument("the code_id of the enrollment code is required (StartEnrollment returned it)",
                                  reason="CODE_ID_REQUIRED")
        me, phone = self._self(person_id)
        self._refuse_if_locked(person_id)
        spki = self._new_key(csr_der, "signing")
        if agent_tls_csr_der and self._new_key(agent_tls_csr_der, "agent TLS") == spki:
            raise InvalidRequest("the agent TLS key must differ from the signing key on the token")
        try:
            accepted = self.identity.codes.verify(ENROLL_PURPOSE, self._binding(person_id, phone), code, code_id)
        except Unauthenticated as e:
            if self._failed(me, person_id, e.reason):
                raise FailedPrecondition("too many wrong enrollment codes: enrollment is now locked for this person; "
                                         "an operator of the organisation must unlock it",
                                         reason="ENROLLMENT_LOCKED") from None
            raise
        issued = self.ca.issue(csr_der, self._subject(me, person_id), person_id)
        agent_der = None
        if agent_tls_csr_der:
            agent_der = issue_client_certificate(self.keys, self.store, self.clock, self.ca.urls, agent_tls_csr_der,
                                                 Caller(me.org_id, Role.AGENT, person_id),
                                                 validity=self.client_validity)
        detail = {"serial": issued.serial_hex, "code_id": accepted.code_id,
                  "key_sha256": ca_db.spki_hash(spki)}
        if agent_der is not None:
            detail["agent_tls_serial"] = ca_db.serial_text(x509.Certificate.load(agent_der).serial_number)
        chain.append(self.store, person_id=person_id, org_id=me.org_id, kind="certificate_issued", at=self.clock.now(),
                     actor=f"agent:{person_id}", provider="ca", reference=issued.serial_hex, detail=detail)
        log.info("enrollment: person %s got certificate %s (code %s)", person_id, issued.serial_hex, accepted.code_id)
        return Enrolled(issued.serial, issued.der, issued.chain, agent_der)
