"""IdentityService: registration, phone possession, real-name decisions and their evidence."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ..clock import Clock, SystemClock, from_text, to_text
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ..notify.message import Address, Channel
from ..otp import Challenge, OneTimeCodes, OtpPolicy, send_code
from ..sealing import SecretBox, derive_key, keyed_hash
from ..store import IntegrityError, Store
from . import evidence as chain
from .contact import normalise_email, normalise_name, normalise_phone
from .documents import Document, normalise_number, parse_document
from .model import EvidenceRecord, Organisation, Person, Status
from .principal import Principal, require_operator, require_person_access
from .providers import Decision, IdentityProvider, ReviewRequest, Verdict
from .schema import MIGRATIONS

log = logging.getLogger(__name__)

PHONE_PURPOSE = "phone-verification"
_MAX_TEXT = 2000


def _actor(p: Principal) -> str:
    return f"{p.role.value}:{p.subject}"


class IdentityService:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        hmac_key: bytes,
        notifier: Channel,
        clock: Clock | None = None,
        *,
        otp_policy: OtpPolicy | None = None,
        providers: Mapping[str, IdentityProvider] | None = None,
        four_eyes: bool = True,
    ) -> None:
        self._store = store
        self._box = box
        self._doc_key = derive_key(hmac_key, "identity/document")
        self._notifier = notifier
        self._clock = clock or SystemClock()
        self._providers = dict(providers or {})
        self.four_eyes = four_eyes  # the operator who registered a person never approves them
        self.codes = OneTimeCodes(store, hmac_key, self._clock, otp_policy)
        store.migrate("identity", MIGRATIONS)

    # --- organisations (signet-admin only; not exposed over gRPC) ---

    def create_organisation(self, name: str) -> Organisation:
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise InvalidArgument("an organisation name is 1 to 200 characters")
        org = Organisation("org_" + secrets.token_hex(8), name, self._clock.now())
        try:
            self._store.insert("identity_organisations",
                               {"id": org.id, "name": org.name, "created_at": to_text(org.created_at)})
        except IntegrityError:
            raise AlreadyExists(f"an organisation named {name!r} exists already") from None
        log.info("identity: created organisation %s", org.id)
        return org

    def get_organisation(self, principal: Principal) -> Organisation:
        row = self._store.query_one("SELECT * FROM identity_organisations WHERE id = ?", (principal.org_id,))
        if row is None:
            raise NotFound(f"no organisation {principal.org_id!r}")
        return Organisation(row["id"], row["name"], from_text(row["created_at"]))

    # --- people ---

    def _doc_hash(self, doc: Document) -> str:
        return keyed_hash(self._doc_key, doc.type, doc.country, doc.number)

    @staticmethod
    def _doc_aad(org_id: str, person_id: str, doc_type: str, country: str) -> bytes:
        return "\x00".join(("signet/identity/document/v1", org_id, person_id, doc_type, country)).encode()

    def _document_number(self, row: Mapping[str, Any]) -> str:
        """The decrypted document number of a person row (never logged, never put in a message)."""
        aad = self._doc_aad(row["org_id"], row["id"], row["doc_type"], row["doc_country"])
        return self._box.decrypt(bytes(row["doc_sealed"]), aad).decode()

    def register_person(
        self,
        principal: Principal,
        *,
        legal_name: str,
        document_type: str,
        document_number: str,
        phone: str,
        email: str,
        document_country: str | None = None,
    ) -> Person:
        """Operator only.  Raises InvalidArgument (bad fields) or AlreadyExists (same document in this org)."""
        require_operator(principal, "register people")
        now = self._clock.now()
        name = normalise_name(legal_name)
        doc = parse_document(document_type, document_number, now.date(), document_country)
        phone_n, email_n = normalise_phone(phone), normalise_email(email)
        person_id = "p_" + secrets.token_hex(12)
        doc_hash = self._doc_hash(doc)
        aad = self._doc_aad(principal.org_id, person_id, doc.type, doc.country)
        sealed = self._box.encrypt(doc.number.encode(), aad)
        duplicate = AlreadyExists("a person with this identity document is already registered in this organisation",
                                  reason="DUPLICATE_DOCUMENT")
        with self._store.transaction():
            self.get_organisation(principal)
            if self._store.query_one("SELECT id FROM identity_people WHERE org_id = ? AND doc_hash = ?",
                                     (principal.org_id, doc_hash)):
                raise duplicate
            try:
                self._store.insert("identity_people", {
                    "id": person_id, "org_id": principal.org_id, "legal_name": name, "doc_type": doc.type,
                    "doc_country": doc.country, "doc_sealed": sealed, "doc_hash": doc_hash, "phone": phone_n,
                    "email": email_n, "status": Status.PENDING.value, "created_at": to_text(now),
                    "created_by": _actor(principal),
                })
            except IntegrityError:
                raise duplicate from None
            chain.append(self._store, person_id=person_id, org_id=principal.org_id, kind="registered", at=now,
                         actor=_actor(principal), detail={"legal_name": name, "document_type": doc.type,
                                                          "document_country": doc.country, "phone": phone_n,
                                                          "email": email_n, **_via(principal)})
        log.info("identity: registered person %s in %s", person_id, principal.org_id)
        return self._load(principal, person_id)

    def _row(self, principal: Principal, person_id: str) -> dict[str, Any]:
        # The org_id condition means another organisation's people are never loaded at all.
        row = self._store.query_one("SELECT * FROM identity_people WHERE id = ? AND org_id = ?",
                                    (person_id, principal.org_id))
        if row is None:
            raise NotFound(f"no person {person_id!r}")
        require_person_access(principal, row["org_id"], person_id)
        return row

    def _load(self, principal: Principal, person_id: str) -> Person:
        return _person(self._row(principal, person_id))

    def get_person(self, principal: Principal, person_id: str) -> Person:
        return self._load(principal, person_id)

    def org_of(self, person_id: str) -> str:
        """The organisation of a person, for callers authenticated by the person id itself (enrollment with a
        one-time code) or acting on the server host (signet-admin); raises NotFound."""
        row = self._store.query_one("SELECT org_id FROM identity_people WHERE id = ?", (person_id,))
        if row is None:
            raise NotFound(f"no person {person_id!r}")
        return str(row["org_id"])

    def list_people(self, principal: Principal, status: Status | None = None) -> list[Person]:
        """Operators see their organisation; members and agents see themselves."""
        sql, params = "SELECT * FROM identity_people WHERE org_id = ?", [principal.org_id]
        if not principal.is_operator:
            sql += " AND id = ?"
            params.append(principal.subject)
        if status is not None:
            sql += " AND status = ?"
            params.append(Status(status).value)
        return [_person(r) for r in self._store.query(sql + " ORDER BY created_at, id", params)]

    def find_by_document(self, principal: Principal, document_type: str, document_number: str,
                         document_country: str | None = None) -> Person:
        """Operator lookup through the keyed hash; the number is never compared in clear."""
        require_operator(principal, "look people up by document")
        doc = parse_document(document_type, document_number, self._clock.now().date(), document_country)
        row = self._store.query_one("SELECT * FROM identity_people WHERE org_id = ? AND doc_hash = ?",
                                    (principal.org_id, self._doc_hash(doc)))
        if row is None:
            raise NotFound("no person with this identity document in this organisation")
        return _person(row)

    def reveal_document(self, principal: Principal, person_id: str) -> Document:
        """The decrypted document (for the CA's serialNumber, or shown to its holder); never logged."""
        row = self._row(principal, person_id)
        number = self._document_number(row)
        log.info("identity: document of %s revealed to %s", person_id, _actor(principal))
        return Document(row["doc_type"], row["doc_country"], number)

    # --- phone possession ---

    @staticmethod
    def _phone_binding(person_id: str, phone: str) -> str:
        return f"{person_id}|{phone}"

    def start_phone_verification(self, principal: Principal, person_id: str) -> Challenge:
        """Send a one-time code to the person's phone.  Raises RateLimited, FailedPrecondition, Unavailable."""
        row = self._row(principal, person_id)
        if row["phone_verified_at"]:
            raise FailedPrecondition("this phone number is verified already", reason="PHONE_ALREADY_VERIFIED")
        challenge = send_code(
            self.codes, self._notifier, purpose=PHONE_PURPOSE, binding=self._phone_binding(person_id, row["phone"]),
            to=Address.phone(row["phone"]), subject="Signet verification code",
            text=lambda code, minutes: (f"Your Signet verification code is {code}. It expires in {minutes} "
                                        "minutes. Never share it; Signet staff will not ask for it."),
        )
        chain.append(self._store, person_id=person_id, org_id=row["org_id"], kind="phone_code_sent",
                     at=self._clock.now(), actor=_actor(principal), provider=challenge.delivery.channel,
                     reference=challenge.code_id,
                     detail={"phone": row["phone"], "code_id": challenge.code_id,
                             "expires_at": to_text(challenge.expires_at),
                             "delivery": challenge.delivery.reference})
        return challenge

    def confirm_phone(self, principal: Principal, person_id: str, code: str, code_id: str | None = None) -> Person:
        """Accept the code once; raises Unauthenticated (with an OTP_* reason) otherwise."""
        row = self._row(principal, person_id)
        if row["phone_verified_at"]:
            raise FailedPrecondition("this phone number is verified already", reason="PHONE_ALREADY_VERIFIED")
        accepted = self.codes.verify(PHONE_PURPOSE, self._phone_binding(person_id, row["phone"]), code, code_id)
        with self._store.transaction():
            self._store.execute(
                "UPDATE identity_people SET phone_verified_at = ?, phone_verified_code_id = ? WHERE id = ?",
                (to_text(accepted.used_at), accepted.code_id, person_id))
            chain.append(self._store, person_id=person_id, org_id=row["org_id"], kind="phone_verified",
                         at=accepted.used_at, actor=_actor(principal), provider="otp", reference=accepted.code_id,
                         detail={"phone": row["phone"], "code_id": accepted.code_id,
                                 "code_issued_at": to_text(accepted.issued_at)})
        log.info("identity: phone of %s verified (code %s)", person_id, accepted.code_id)
        return self._load(principal, person_id)

    # --- real-name decisions ---

    def _decidable(self, principal: Principal, person_id: str) -> dict[str, Any]:
        require_operator(principal, "decide on real-name verification")
        row = self._row(principal, person_id)
        if row["status"] == Status.APPROVED.value:
            raise FailedPrecondition("this person is approved already", reason="ALREADY_APPROVED")
        if not row["phone_verified_at"]:
            raise FailedPrecondition("the person's phone must be verified before the real-name decision",
                                     reason="PHONE_NOT_VERIFIED")
        return row

    def _check_text(self, row: dict[str, Any], *texts: str) -> None:
        for text in texts:
            if len(text) > _MAX_TEXT:
                raise InvalidArgument(f"evidence and reference texts are limited to {_MAX_TEXT} characters")
        number = self._document_number(row)
        if any(number in normalise_number(t) for t in texts):
            raise InvalidArgument("evidence texts must not contain the identity document number; "
                                  "refer to the document instead", reason="EVIDENCE_HAS_DOCUMENT_NUMBER")

    def approve(self, principal: Principal, person_id: str, *, evidence: str, reference: str = "") -> Person:
        """Operator approval (the built-in provider): records who, when, and on what evidence."""
        if not evidence.strip():
            raise InvalidArgument("say what the approval is based on (evidence text)", reason="EVIDENCE_REQUIRED")
        row = self._decidable(principal, person_id)
        if self.four_eyes and row["created_by"] == _actor(principal):
            raise PermissionDenied("four eyes: the operator who registered this person may not also approve them; "
                                   "another operator of the organisation must", reason="FOUR_EYES")
        self._check_text(row, evidence, reference)
        return self._record(principal, row, Decision(Verdict.APPROVE, "operator", reference, evidence,
                                                     principal.subject))

    def reject(self, principal: Principal, person_id: str, *, reason: str, reference: str = "") -> Person:
        if not reason.strip():
            raise InvalidArgument("say why the person is rejected", reason="REASON_REQUIRED")
        row = self._decidable(principal, person_id)
        self._check_text(row, reason, reference)
        return self._record(principal, row, Decision(Verdict.REJECT, "operator", reference, reason,
                                                     principal.subject))

    def review(self, principal: Principal, person_id: str, provider: str) -> Person:
        """Ask an external identity provider and record its decision (operator only)."""
        impl = self._providers.get(provider)
        if impl is None:
            raise NotFound(f"no identity provider {provider!r} is configured")
        row = self._decidable(principal, person_id)
        request_id = "rv_" + secrets.token_hex(12)
        chain.append(self._store, person_id=person_id, org_id=row["org_id"], kind="review_requested",
                     at=self._clock.now(), actor=_actor(principal), provider=provider, reference=request_id,
                     detail={"sent": ["legal_name", "document", "phone", "email"]})
        doc = self.reveal_document(principal, person_id)
        decision = impl.review(ReviewRequest(request_id, row["org_id"], person_id, row["legal_name"], doc,
                                             row["phone"], from_text(row["phone_verified_at"]), row["email"]))
        return self._record(principal, row, decision, request_id=request_id)

    def _record(self, principal: Principal, row: dict[str, Any], decision: Decision,
                request_id: str | None = None) -> Person:
        person_id = row["id"]
        now = self._clock.now()
        status = Status.APPROVED if decision.verdict is Verdict.APPROVE else Status.REJECTED
        with self._store.transaction():
            current = self._row(principal, person_id)
            if current["status"] == Status.APPROVED.value:  # decided concurrently
                raise FailedPrecondition("this person is approved already", reason="ALREADY_APPROVED")
            self._store.execute("UPDATE identity_people SET status = ?, decided_at = ? WHERE id = ?",
                                (status.value, to_text(now), person_id))
            detail: dict[str, Any] = {"reason" if status is Status.REJECTED else "evidence": decision.reason,
                                      "phone_verified_at": current["phone_verified_at"],
                                      "phone_verified_code_id": current["phone_verified_code_id"]}
            if request_id:
                detail["request_id"] = request_id
            detail.update(_via(principal))
            actor = f"operator:{decision.reviewer}" if decision.provider == "operator" else \
                f"provider:{decision.provider} (requested by {_actor(principal)})"
            chain.append(self._store, person_id=person_id, org_id=row["org_id"], kind=status.value, at=now,
                         actor=actor, provider=decision.provider, reference=decision.reference, detail=detail)
        log.info("identity: person %s %s by %s (reference %s)", person_id, status.value, decision.provider,
                 decision.reference or "-")
        return self._load(principal, person_id)

    def evidence(self, principal: Principal, person_id: str) -> list[EvidenceRecord]:
        """The person's evidence chain, oldest first, after checking its digests."""
        self._row(principal, person_id)
        return chain.load(self._store, person_id)


def _via(principal: Principal) -> dict[str, str]:
    """How an operator acting without a certificate came in (signet-admin on the server host, and as which OS
    user), recorded beside the login it asserted."""
    return {"via": principal.via} if principal.via else {}


def _person(row: Mapping[str, Any]) -> Person:
    return Person(
        id=row["id"], org_id=row["org_id"], legal_name=row["legal_name"], document_type=row["doc_type"],
        document_country=row["doc_country"], phone=row["phone"], email=row["email"], status=Status(row["status"]),
        phone_verified_at=from_text(row["phone_verified_at"]) if row["phone_verified_at"] else None,
        decided_at=from_text(row["decided_at"]) if row["decided_at"] else None,
        created_at=from_text(row["created_at"]),
    )


__all__ = ["PHONE_PURPOSE", "IdentityService"]
