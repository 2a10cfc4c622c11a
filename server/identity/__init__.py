"""Identity binding (real-name authentication): organisations, people, phone possession, approval.

Service API (what the gRPC servicer calls; every call but ``create_organisation`` takes the
calling :class:`Principal`)::

    svc = IdentityService(store, box, hmac_key, notifier, clock,
                          otp_policy=OtpPolicy(), providers={"kyc": WebhookIdentityProvider(...)})

    svc.create_organisation(name) -> Organisation                      # signet-admin only
    svc.get_organisation(p) -> Organisation
    svc.register_person(p, legal_name=, document_type=, document_number=, phone=, email=,
                        document_country=None) -> Person               # operator
    svc.get_person(p, person_id) -> Person
    svc.org_of(person_id) -> str                                       # no principal: enrollment, signet-admin
    svc.list_people(p, status=None) -> list[Person]                    # member/agent: only self
    svc.find_by_document(p, document_type, document_number, document_country=None) -> Person  # operator
    svc.reveal_document(p, person_id) -> Document                      # decrypts; for the CA / the holder
    svc.start_phone_verification(p, person_id) -> Challenge            # code goes out via `notifier`
    svc.confirm_phone(p, person_id, code, code_id=None) -> Person
    svc.approve(p, person_id, evidence=, reference="") -> Person       # operator (built-in provider)
    svc.reject(p, person_id, reason=, reference="") -> Person          # operator
    svc.review(p, person_id, provider) -> Person                       # operator; external provider
    svc.evidence(p, person_id) -> list[EvidenceRecord]                 # digest-chained, checked on read
    svc.codes -> OneTimeCodes                                          # shared with envelope signing

    TotpAuthenticators(store, box, clock).enroll(subject) / .verify(subject, code)
                                         # RFC 6238 app codes, one use per time step (.totp)

Authorization (:mod:`.principal`): ``operator`` acts on its organisation's people; ``member`` and
``agent`` act only on the person whose id is their ``subject``.  Another organisation's people
are invisible: :class:`~server.errors.NotFound`, exactly as for an id that does not exist.  A
role that may not do something gets :class:`~server.errors.PermissionDenied`.

Lifecycle: registered (``pending``) -> phone verified (one-time code, :mod:`server.otp`) ->
``approved`` or ``rejected`` by an operator or an external provider; a rejected person may be
decided again (with new evidence), an approved one may not (withdrawal belongs with certificate
revocation).

Errors are :mod:`server.errors` classes with a stable ``reason``: InvalidArgument
(DOCUMENT_INVALID, PHONE_INVALID, EMAIL_INVALID, NAME_INVALID, ...), AlreadyExists
(DUPLICATE_DOCUMENT), FailedPrecondition (PHONE_NOT_VERIFIED, ALREADY_APPROVED, ...),
Unauthenticated (OTP_INCORRECT, OTP_EXPIRED, OTP_USED, ...), RateLimited (OTP_SEND_TOO_SOON,
OTP_HOURLY_LIMIT; ``retry_after``), Unavailable (delivery or provider failure).

Personal data at rest: the document number is stored only encrypted with the injected
:class:`~server.sealing.SecretBox` (AES-256-GCM; bound to organisation, person and document type)
and as a keyed HMAC-SHA256 (a key derived from ``hmac_key``) for duplicate detection and lookup.
It is never logged nor put in an error message or an evidence record.
"""

from .documents import DOCUMENT_TYPES, Document, DocumentType, parse_document
from .evidence import EvidenceChainBroken
from .model import EvidenceRecord, Organisation, Person, Status
from .principal import Principal, Role
from .providers import Decision, IdentityProvider, ReviewRequest, Verdict, WebhookIdentityProvider
from .service import PHONE_PURPOSE, IdentityService
from .totp import TotpAuthenticators, TotpEnrollment, TotpPolicy

__all__ = [
    "DOCUMENT_TYPES", "PHONE_PURPOSE", "Decision", "Document", "DocumentType", "EvidenceChainBroken",
    "EvidenceRecord", "IdentityProvider", "IdentityService", "Organisation", "Person", "Principal",
    "ReviewRequest", "Role", "Status", "TotpAuthenticators", "TotpEnrollment", "TotpPolicy", "Verdict",
    "WebhookIdentityProvider", "parse_document",
]
