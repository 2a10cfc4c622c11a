"""IdentityService: the identity API the servicers, enrollment and signet-admin call.

It composes the parts, each in its own module: persistence and the organisation boundary (:mod:`.people`),
document sealing (:mod:`.vault`), phone possession (:mod:`.phone`) and real-name decisions (:mod:`.decisions`).
Registration, which touches all of them, lives here."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from .. import audit
from ..clock import Clock, SystemClock, to_text
from ..errors import AlreadyExists, NotFound
from ..notify.message import Channel
from ..otp import Challenge, OneTimeCodes, OtpPolicy
from ..sealing import SecretBox
from ..store import IntegrityError, Sealed, Store
from . import evidence as chain
from .contact import normalise_email, normalise_name, normalise_phone
from .decisions import Decisions
from .documents import Document, parse_document
from .model import EvidenceRecord, Organisation, Person, Status
from .people import People, actor, person, via
from .phone import PHONE_PURPOSE, PhoneVerification
from .principal import Principal, require_operator
from .providers import IdentityProvider
from .schema import MIGRATIONS
from .vault import DocumentVault

log = logging.getLogger(__name__)


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
        self._clock = clock or SystemClock()
        self._people = People(store, self._clock)
        self._vault = DocumentVault(box, hmac_key)
        self.codes = OneTimeCodes(store, hmac_key, self._clock, otp_policy)
        self._phone = PhoneVerification(self._people, self.codes, notifier, self._clock)
        self._decisions = Decisions(self._people, self._clock, document_number=self._vault.number,
                                    reveal=self.reveal_document, providers=providers or {}, four_eyes=four_eyes)
        store.migrate("identity", MIGRATIONS)
        audit.migrate(store)  # every evidence record is also an audit leaf (evidence.append)

    @property
    def four_eyes(self) -> bool:
        return self._decisions.four_eyes

    # --- organisations (signet-admin only; not exposed over gRPC) ---
    def create_organisation(self, name: str) -> Organisation:
        org = self._people.create_organisation(name)
        log.info("identity: created organisation %s", org.id)
        return org

    def get_organisation(self, principal: Principal) -> Organisation:
        return self._people.organisation(principal.org_id)

    # --- people ---
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
        doc_hash = self._vault.lookup_hash(doc)
        sealed = self._vault.seal(principal.org_id, person_id, doc)
        duplicate = AlreadyExists("a person with this identity document is already registered in this organisation",
                                  reason="DUPLICATE_DOCUMENT")
        with self._store.transaction():
            self.get_organisation(principal)
            if self._people.by_document_hash(principal.org_id, doc_hash):
                raise duplicate
            try:
                self._store.insert("identity_people", {
                    "id": person_id, "org_id": principal.org_id, "legal_name": Sealed(name), "doc_type": doc.type,
                    "doc_country": doc.country, "doc_sealed": sealed, "doc_hash": doc_hash, "phone": Sealed(phone_n),
                    "email": Sealed(email_n), "status": Status.PENDING.value, "created_at": to_text(now),
                    "created_by": actor(principal),
                })
            except IntegrityError:
                raise duplicate from None
            chain.append(self._store, person_id=person_id, org_id=principal.org_id, kind="registered", at=now,
                         actor=actor(principal), detail={"legal_name": name, "document_type": doc.type,
                                                         "document_country": doc.country, "phone": phone_n,
                                                         "email": email_n, **via(principal)})
        log.info("identity: registered person %s in %s", person_id, principal.org_id)
        return self._people.load(principal, person_id)

    def get_person(self, principal: Principal, person_id: str) -> Person:
        return self._people.load(principal, person_id)

    def registered_by(self, principal: Principal, person_id: str) -> str:
        """Who registered the person (``operator:<login>``), for four-eyes rules; NotFound across organisations."""
        self._people.load(principal, person_id)
        row = self._store.query_one("SELECT created_by FROM identity_people WHERE id = ?", (person_id,))
        return str(row["created_by"]) if row else ""

    def org_of(self, person_id: str) -> str:
        """The organisation of a person, for callers authenticated by the person id itself (enrollment with a
        one-time code) or acting on the server host (signet-admin); raises NotFound."""
        return self._people.org_of(person_id)

    def list_people(self, principal: Principal, status: Status | None = None) -> list[Person]:
        """Operators see their organisation; members and agents see themselves."""
        return self._people.list(principal, status)

    def find_by_document(self, principal: Principal, document_type: str, document_number: str,
                         document_country: str | None = None) -> Person:
        """Operator lookup through the keyed hash; the number is never compared in clear."""
        require_operator(principal, "look people up by document")
        doc = parse_document(document_type, document_number, self._clock.now().date(), document_country)
        row = self._people.by_document_hash(principal.org_id, self._vault.lookup_hash(doc))
        if row is None:
            raise NotFound("no person with this identity document in this organisation")
        return person(row)

    def reveal_document(self, principal: Principal, person_id: str) -> Document:
        """The decrypted document (for the CA's serialNumber, or shown to its holder); never logged."""
        row = self._people.row(principal, person_id)
        number = self._vault.number(row)
        log.info("identity: document of %s revealed to %s", person_id, actor(principal))
        return Document(row["doc_type"], row["doc_country"], number)

    # --- phone possession ---
    def start_phone_verification(self, principal: Principal, person_id: str) -> Challenge:
        return self._phone.start(principal, person_id)

    def confirm_phone(self, principal: Principal, person_id: str, code: str, code_id: str | None = None) -> Person:
        return self._phone.confirm(principal, person_id, code, code_id)

    # --- real-name decisions ---
    def approve(self, principal: Principal, person_id: str, *, evidence: str, reference: str = "") -> Person:
        return self._decisions.approve(principal, person_id, evidence=evidence, reference=reference)

    def reject(self, principal: Principal, person_id: str, *, reason: str, reference: str = "") -> Person:
        return self._decisions.reject(principal, person_id, reason=reason, reference=reference)

    def review(self, principal: Principal, person_id: str, provider: str) -> Person:
        return self._decisions.review(principal, person_id, provider)

    def evidence(self, principal: Principal, person_id: str) -> list[EvidenceRecord]:
        """The person's evidence chain, oldest first, after checking its digests."""
        self._people.row(principal, person_id)
        return chain.load(self._store, person_id)


__all__ = ["PHONE_PURPOSE", "IdentityService"]
