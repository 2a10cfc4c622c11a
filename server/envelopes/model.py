"""What an envelope is: its states, the legal moves between them (as data), and the values the service hands out.

Envelope::

    draft --send--> sent --(every signer and approver signed every document)--> completed
                      |--decline--> declined     draft|sent --void--> voided     sent --expire--> expired

Recipient::

    pending --notify (its routing group starts)--> notified --view (first fetch)--> viewed
    notified|viewed --(signed every document)--> signed        notified|viewed --decline--> declined

``notified`` is entered in the transaction that starts the recipient's turn, with their notice queued;
``notified_at`` is the moment that notice is handed to the channel (:mod:`.dispatch`), empty until then.

A sent envelope is expired from the instant of its ``expires_at`` (:func:`as_of`): every move is refused with
``ENVELOPE_EXPIRED`` from then on, before the scheduler has recorded the state change.

A move from a state that does not allow it is :class:`~server.errors.FailedPrecondition` whose reason names the
current state (``ENVELOPE_SENT``, ``RECIPIENT_PENDING`` ...), so a client can tell what happened meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..errors import FailedPrecondition, NotFound

PDF = "application/pdf"


class EnvelopeState(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    COMPLETED = "completed"
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"


class RecipientState(StrEnum):
    PENDING = "pending"
    NOTIFIED = "notified"
    VIEWED = "viewed"
    SIGNED = "signed"
    DECLINED = "declined"


class RecipientRole(StrEnum):
    SIGNER = "signer"
    APPROVER = "approver"  # signs too, on the same path as a signer
    COPY = "copy"  # notified, never asked to sign


class SigningMethod(StrEnum):
    TOKEN = "token"  # noqa: S105 - a signing method, not a secret: the recipient's own token, through their agent
    REMOTE = "remote"  # a key held for them on the server token (server.remotekeys), activated by a code


E, R = EnvelopeState, RecipientState

# action -> (states it may start from, state it leads to; None: the state stays)
ENVELOPE_MOVES: Mapping[str, tuple[frozenset[EnvelopeState], EnvelopeState | None]] = {
    "send": (frozenset({E.DRAFT}), E.SENT),
    "edit": (frozenset({E.DRAFT}), None),  # the sender moves signature boxes (EnvelopeService.update_fields)
    "start_signing": (frozenset({E.SENT}), None),
    "sign": (frozenset({E.SENT}), None),
    "complete": (frozenset({E.SENT}), E.COMPLETED),
    "decline": (frozenset({E.SENT}), E.DECLINED),
    "void": (frozenset({E.DRAFT, E.SENT}), E.VOIDED),
    "expire": (frozenset({E.SENT}), E.EXPIRED),
    "remind": (frozenset({E.SENT}), None),
}
RECIPIENT_MOVES: Mapping[str, tuple[frozenset[RecipientState], RecipientState | None]] = {
    "notify": (frozenset({R.PENDING}), R.NOTIFIED),
    "view": (frozenset({R.NOTIFIED}), R.VIEWED),
    "start_signing": (frozenset({R.NOTIFIED, R.VIEWED}), None),
    "sign": (frozenset({R.NOTIFIED, R.VIEWED}), None),  # one document; the state moves with the last one
    "finish": (frozenset({R.NOTIFIED, R.VIEWED}), R.SIGNED),
    "decline": (frozenset({R.NOTIFIED, R.VIEWED}), R.DECLINED),
}
_WORDS = {"send": "sent", "edit": "edited", "start_signing": "signed", "sign": "signed", "complete": "completed",
          "decline": "declined", "void": "voided", "expire": "expired", "remind": "reminded", "notify": "notified",
          "view": "viewed", "finish": "signed"}
_WHY = {R.PENDING: "it is not this recipient's turn yet (an earlier routing group has not signed)"}


def envelope_move(state: EnvelopeState, action: str) -> EnvelopeState:
    """The state after ``action``; FailedPrecondition ``ENVELOPE_<STATE>`` when ``state`` does not allow it."""
    allowed, after = ENVELOPE_MOVES[action]
    if state not in allowed:
        raise FailedPrecondition(f"the envelope is {state.value}: it cannot be {_WORDS[action]} now",
                                 reason=f"ENVELOPE_{state.name}")
    return after or state


def recipient_move(state: RecipientState, action: str) -> RecipientState:
    """The state after ``action``; FailedPrecondition ``RECIPIENT_<STATE>`` when ``state`` does not allow it."""
    allowed, after = RECIPIENT_MOVES[action]
    if state not in allowed:
        why = _WHY.get(state, f"the recipient is {state.value}")
        raise FailedPrecondition(f"{why}: the envelope cannot be {_WORDS[action]} by this recipient now",
                                 reason=f"RECIPIENT_{state.name}")
    return after or state


@dataclass(frozen=True)
class SignatureField:
    """Where a recipient's signature goes on every PDF of the envelope: page (1-based) and a box in points."""

    page: int
    x1: float
    y1: float
    x2: float
    y2: float


class FormFieldKind(StrEnum):
    TEXT = "text"
    DATE = "date"  # filled as YYYY-MM-DD
    CHECKBOX = "checkbox"  # "yes" or "no"


@dataclass(frozen=True)
class FormField:
    """A form field assigned to one recipient: placed empty on every PDF of the envelope when the draft is created
    (:mod:`formats.formfields`), filled by that recipient in their signature's revision, by nobody else."""

    name: str
    kind: FormFieldKind
    page: int  # from 1
    x1: float
    y1: float
    x2: float
    y2: float
    required: bool = False


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    media_type: str
    original_sha256: str  # locked at send ("" in a draft)
    current_sha256: str
    size: int  # of the current revision
    pages: int  # 0 for files other than PDF
    signatures: int
    signed_by: tuple[str, ...] = ()  # recipient ids, in the order they signed


    @property
    def is_pdf(self) -> bool:
        return self.media_type == PDF


@dataclass(frozen=True)
class Recipient:
    id: str
    person_id: str
    org_id: str
    legal_name: str
    role: RecipientRole
    routing_order: int
    signing_method: SigningMethod
    state: RecipientState
    notified_at: datetime | None = None
    viewed_at: datetime | None = None
    signed_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str = ""
    certificate_serial: str = ""
    field: SignatureField | None = None
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None  # None: no reminder is due (none scheduled, or the last was sent)
    form_fields: tuple[FormField, ...] = ()

    @property
    def signs(self) -> bool:
        return self.role is not RecipientRole.COPY

    @property
    def field_name(self) -> str:
        """The PDF signature field this recipient's signature fills."""
        return f"signet-{self.id}"


@dataclass(frozen=True)
class Envelope:
    id: str
    org_id: str
    sender_person_id: str
    sender_name: str
    title: str
    message: str
    tags: tuple[str, ...]
    state: EnvelopeState
    documents: tuple[Document, ...]
    recipients: tuple[Recipient, ...]
    created_at: datetime
    expires_in_days: int
    version: int
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    reminder_every_days: int = 0  # 0: no reminders
    reminder_max: int = 0

    def document(self, document_id: str) -> Document:
        for d in self.documents:
            if d.id == document_id:
                return d
        raise NotFound(f"envelope {self.id} has no document {document_id!r}", reason="DOCUMENT_NOT_FOUND")

    def recipient_for(self, person_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.person_id == person_id), None)


def as_of(env: Envelope, now: datetime) -> Envelope:
    """``env`` as it stands at ``now``: a sent envelope whose ``expires_at`` has come is expired, whether or not
    the scheduler has recorded it yet (it records the change within ``[envelopes] scheduler_seconds``)."""
    if env.state is EnvelopeState.SENT and env.expires_at is not None and now >= env.expires_at:
        return replace(env, state=EnvelopeState.EXPIRED)
    return env


@dataclass(frozen=True)
class Revision:
    """One step of a document: seq 0 is the bytes uploaded; each signature adds one (a whole new PDF revision,
    or a detached CMS signature of the bytes as sent)."""

    document_id: str
    seq: int
    kind: str  # original | pdf | detached
    sha256: str
    size: int
    recipient_id: str | None
    certificate_serial: str | None
    at: datetime


@dataclass(frozen=True)
class Event:
    id: int
    envelope_id: str
    type: str  # created, sent, notified, viewed, code_sent, signed, refused, declined, voided, completed, expired,
    # reminded, notice_failed, notices_replayed, placed
    actor: str  # person:<id>, operator:<login>, server
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    envelopes: tuple[Envelope, ...]
    next_page_token: str


@dataclass(frozen=True)
class DocumentContent:
    """A document's current revision (the bytes as sent, for files other than PDF) and its detached signatures."""

    document: Document
    content: bytes = field(repr=False)
    signatures: tuple[bytes, ...] = ()
