"""Who may see and do what with an envelope.

- A **person** (role ``agent``, or ``member``; subject = person id) sees the envelopes they sent and, once sent,
  those addressed to them (a draft is the sender's alone).  The sender sends and voids; a recipient views,
  signs and declines.
- An **operator** sees every envelope sent from its organisation, read-only, and may void one.
- Anyone else: :class:`~server.errors.NotFound`, exactly like an id that does not exist.  A caller who sees
  the envelope but whose part does not allow the operation gets PermissionDenied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotFound, PermissionDenied
from ..identity import Principal
from .model import Envelope, EnvelopeState, Recipient


@dataclass(frozen=True)
class Access:
    envelope: Envelope
    sender: bool
    recipient: Recipient | None
    operator: bool


def actor(principal: Principal) -> str:
    """How the event log names the caller."""
    if principal.is_operator:
        return f"operator:{principal.subject}"
    return f"person:{principal.subject}"


def caller_key(principal: Principal) -> str:
    """The owner of an idempotency key: one caller, across its organisation and role."""
    return f"{principal.org_id}|{principal.role.value}|{principal.subject}"


def person_id(principal: Principal, action: str) -> str:
    """The person acting (through their agent); operators (and stations) act for no person."""
    if not principal.is_person:
        raise PermissionDenied(f"only a person, through their own agent, may {action}")
    return principal.subject


def access(principal: Principal, env: Envelope | None, envelope_id: str) -> Access:
    """What ``principal`` is to ``env``; NotFound when it may not see it (or it does not exist)."""
    if env is not None:
        if principal.is_operator:
            if env.org_id == principal.org_id:
                return Access(env, False, None, True)
        elif principal.is_person:  # a station by itself is nobody: it sees nothing
            sender = env.org_id == principal.org_id and env.sender_person_id == principal.subject
            mine = env.recipient_for(principal.subject)
            recipient = mine if mine is not None and mine.org_id == principal.org_id \
                and env.state is not EnvelopeState.DRAFT else None
            if sender or recipient is not None:
                return Access(env, sender, recipient, False)
    raise NotFound(f"no envelope {envelope_id!r}", reason="ENVELOPE_NOT_FOUND")


def require_sender(a: Access, action: str) -> None:
    if not a.sender:
        raise PermissionDenied(f"only the sender may {action} this envelope")


def require_recipient(a: Access, action: str) -> Recipient:
    if a.recipient is None:
        raise PermissionDenied(f"only a recipient of this envelope may {action} it")
    return a.recipient
