"""Envelopes: contracts sent from one person to others, signed in routing order, every revision validated.

Service API (what the gRPC servicer calls; every call takes the calling Principal)::

    svc = EnvelopeService(store, blobs, identity, notifier, rules=SigningRules(...), clock=clock, remote_keys=...,
                          limits=Limits(max_document_bytes=..., default_expiry_days=...),
                          tuning=Tuning(poll_seconds=5, notice_max_attempts=8, ...))
    svc.create(p, title=, documents=[DocumentInput], recipients=[RecipientInput], message="", tags=(),
               expires_in_days=0, reminder_every_days=0, reminder_max=0, idempotency_key="") -> Envelope
    svc.send(p, envelope_id, idempotency_key="") -> Envelope                # locks SHA-256s, sent_at, notices
    svc.bulk_send(p, template_id, rows=[{name: value}], idempotency_key="") -> list[RowResult]   # a row each
    svc.get(p, envelope_id) -> Envelope
    svc.list_envelopes(p, view="" | "sent" | "inbox", page_size=0, page_token="") -> Page
    svc.get_document(p, envelope_id, document_id) -> DocumentContent       # marks a notified recipient viewed
    svc.start_signing(p, envelope_id, document_id, revision_sha256) -> Challenge   # code to the phone
    svc.submit_signature(p, envelope_id, document_id, content=, code=, code_id="", idempotency_key="")
    svc.sign_remotely(p, envelope_id, document_id, revision_sha256, code=, code_id="", idempotency_key="")
    svc.decline(p, envelope_id, reason, idempotency_key="") -> Envelope
    svc.void(p, envelope_id, reason, idempotency_key="") -> Envelope
    svc.list_events(p, envelope_id, after_event_id=0, page_size=0) -> list[Event]
    svc.watch(p, envelope_id="", after_event_id=0, cancelled=...) -> Iterator[WatchItem]   # replay, then follow
    svc.notices_of(p, event_id) -> list[Notice]; svc.replay_notices(p, event_id) -> list[Notice]   # operators
    svc.start(); svc.stop(timeout)          # signet-server run: the scheduler and dispatcher threads
    svc.scheduler.run_once() -> Pass; svc.dispatcher.run_once() -> int      # one pass each (tests)

Modules, each owning one thing: :mod:`.model` (states, legal moves, values), :mod:`.schema` (tables),
:mod:`.records` (rows <-> values), :mod:`.access` (who sees and does what), :mod:`.parties` (people across
organisations), :mod:`.drafting` (what a new envelope may hold), :mod:`.routing` (groups, completion),
:mod:`.posting` (writing and sending a draft), :mod:`.bulk` (one envelope per row from a template),
:mod:`.notices` (the notice queue and texts), :mod:`.dispatch` (delivering them), :mod:`.scheduler` (expiry,
reminders), :mod:`.background` (their threads), :mod:`.bell` (wake-ups after commits), :mod:`.watch` (the
event stream), :mod:`.signing` (signing codes), :mod:`.acceptance` (revision and signer checks),
:mod:`.remote` (signing with a key held on the server token), :mod:`.events` (the event log),
:mod:`.idempotency`, :mod:`.listing` (views and pages), :mod:`.service` (the operations).

Errors are :mod:`server.errors` classes with stable reasons: NotFound (ENVELOPE_NOT_FOUND, DOCUMENT_NOT_FOUND,
PERSON_NOT_FOUND, EVENT_NOT_FOUND), PermissionDenied (not the sender / not a recipient / COPY_RECIPIENT),
InvalidArgument (TITLE_INVALID, DOCUMENT_TOO_LARGE, INVALID_DOCUMENT, RECIPIENT_DUPLICATE, ROUTING_ORDER_INVALID,
SIGNER_REQUIRED, FIELD_INVALID, REASON_REQUIRED, REMINDERS_INVALID, VIEW_INVALID, PAGE_TOKEN_INVALID,
IDEMPOTENCY_KEY_REUSED, TOO_MANY_ROWS, PLACEHOLDER_UNKNOWN ...), FailedPrecondition (ENVELOPE_<STATE> --
ENVELOPE_EXPIRED from the instant of ``expires_at`` --, RECIPIENT_<STATE>, NOT_APPROVED, REVISION_CHANGED,
DOCUMENT_ALREADY_SIGNED, TOKEN_RECIPIENT, REMOTE_RECIPIENT, REMOTE_KEY_MISSING, REMOTE_KEY_REVOKED,
REMOTE_SIGNING_UNAVAILABLE, RECIPIENT_PLACEHOLDER, the revision verdict's reason,
SIGNER_NOT_OURS, SIGNER_NOT_RECIPIENT, SIGNER_REVOKED, SIGNER_NOT_YET_VALID, SIGNER_EXPIRED, SIGNER_WRONG_POLICY,
NO_NOTICES), Unauthenticated (OTP_INCORRECT, OTP_USED, OTP_NOT_FOUND, OTP_EXPIRED ...), RateLimited (codes per
phone; BUSY: too many watches), Unavailable (SERVER_STOPPING: a watch ends).

Not here yet (issue 10's later parts): the CSC API, signature fields drawn into the PDF by the server for token
signers.
"""

from .acceptance import SigningRules
from .background import Tuning
from .bulk import MAX_ROWS, RowResult
from .dispatch import RetryRule
from .drafting import DocumentInput, Limits, RecipientInput
from .model import (
    Document,
    DocumentContent,
    Envelope,
    EnvelopeState,
    Event,
    FormField,
    FormFieldKind,
    Page,
    Recipient,
    RecipientRole,
    RecipientState,
    SignatureField,
    SigningMethod,
)
from .notices import Notice
from .remote import RemoteKeyring
from .scheduler import Pass
from .service import EnvelopeService
from .signing import SIGN_PURPOSE
from .watch import WatchItem

__all__ = [
    "MAX_ROWS", "SIGN_PURPOSE", "Document", "DocumentContent", "DocumentInput", "Envelope", "EnvelopeService",
    "EnvelopeState", "Event", "FormField", "FormFieldKind", "Limits", "Notice", "Page", "Pass", "Recipient",
    "RecipientInput", "RecipientRole", "RecipientState", "RemoteKeyring", "RetryRule", "RowResult", "SignatureField",
    "SigningMethod", "SigningRules", "Tuning", "WatchItem",
]
