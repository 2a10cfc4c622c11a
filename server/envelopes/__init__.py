"""Envelopes: contracts sent from one person to others, signed in routing order, every revision validated.

Service API (what the gRPC servicer calls; every call takes the calling Principal)::

    svc = EnvelopeService(store, blobs, identity, notifier, rules=SigningRules(...), clock=clock,
                          limits=Limits(max_document_bytes=..., default_expiry_days=...))
    svc.create(p, title=, documents=[DocumentInput], recipients=[RecipientInput], message="", tags=(),
               expires_in_days=0, idempotency_key="") -> Envelope          # a draft; the sender is the caller
    svc.send(p, envelope_id, idempotency_key="") -> Envelope                # locks SHA-256s, sent_at, notices
    svc.get(p, envelope_id) -> Envelope
    svc.list_envelopes(p, view="" | "sent" | "inbox", page_size=0, page_token="") -> Page
    svc.get_document(p, envelope_id, document_id) -> DocumentContent       # marks a notified recipient viewed
    svc.start_signing(p, envelope_id, document_id, revision_sha256) -> Challenge   # code to the phone
    svc.submit_signature(p, envelope_id, document_id, content=, code=, code_id="", idempotency_key="")
    svc.decline(p, envelope_id, reason, idempotency_key="") -> Envelope
    svc.void(p, envelope_id, reason, idempotency_key="") -> Envelope
    svc.list_events(p, envelope_id, after_event_id=0, page_size=0) -> list[Event]

Modules, each owning one thing: :mod:`.model` (states, legal moves, values), :mod:`.schema` (tables),
:mod:`.records` (rows <-> values), :mod:`.access` (who sees and does what), :mod:`.parties` (people across
organisations), :mod:`.drafting` (what a new envelope may hold), :mod:`.routing` (groups, completion),
:mod:`.notices` (e-mail notices), :mod:`.signing` (signing codes), :mod:`.acceptance` (revision and signer
checks), :mod:`.events` (the event log), :mod:`.idempotency`, :mod:`.listing` (views and pages),
:mod:`.service` (the operations).

Errors are :mod:`server.errors` classes with stable reasons: NotFound (ENVELOPE_NOT_FOUND, DOCUMENT_NOT_FOUND,
PERSON_NOT_FOUND), PermissionDenied (not the sender / not a recipient / COPY_RECIPIENT), InvalidArgument
(TITLE_INVALID, DOCUMENT_TOO_LARGE, INVALID_DOCUMENT, RECIPIENT_DUPLICATE, ROUTING_ORDER_INVALID,
SIGNER_REQUIRED, FIELD_INVALID, REASON_REQUIRED, VIEW_INVALID, PAGE_TOKEN_INVALID, IDEMPOTENCY_KEY_REUSED ...),
FailedPrecondition (ENVELOPE_<STATE>, RECIPIENT_<STATE>, NOT_APPROVED, REVISION_CHANGED,
DOCUMENT_ALREADY_SIGNED, REMOTE_SIGNING_UNAVAILABLE, the revision verdict's reason, SIGNER_NOT_OURS,
SIGNER_NOT_RECIPIENT, SIGNER_REVOKED, SIGNER_NOT_YET_VALID, SIGNER_EXPIRED, SIGNER_WRONG_POLICY),
Unauthenticated (OTP_INCORRECT, OTP_USED, OTP_NOT_FOUND, OTP_EXPIRED ...), RateLimited (codes per phone).

Not here yet (issue 10's later parts): expiry and reminders (the scheduler), remote signing and the CSC API,
bulk send, signature fields written into the PDF by the server, the WatchEnvelopeEvents stream.
"""

from .acceptance import SigningRules
from .drafting import DocumentInput, Limits, RecipientInput
from .model import (
    Document,
    DocumentContent,
    Envelope,
    EnvelopeState,
    Event,
    Page,
    Recipient,
    RecipientRole,
    RecipientState,
    SignatureField,
    SigningMethod,
)
from .service import EnvelopeService
from .signing import SIGN_PURPOSE

__all__ = [
    "SIGN_PURPOSE", "Document", "DocumentContent", "DocumentInput", "Envelope", "EnvelopeService", "EnvelopeState",
    "Event", "Limits", "Page", "Recipient", "RecipientInput", "RecipientRole", "RecipientState", "SignatureField",
    "SigningMethod", "SigningRules",
]
