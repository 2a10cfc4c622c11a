"""Routing: which recipients' turn it is, and what happens when a group has signed.

Recipients with equal ``routing_order`` form a parallel group.  The current group is the lowest order that
still has a signer or approver who has not signed every document; every recipient up to it (copies included)
has been notified.  When the last signer or approver has signed every document the envelope is completed and
everyone -- the sender, every signer, approver and copy -- gets a completion notice.

A recipient's turn starts in the transaction of the change that starts it: state ``notified``, their notice
queued (:mod:`.notices`; its delivery sets ``notified_at``), and for a signer or approver of an envelope with
a reminder schedule the first reminder due ``reminder_every_days`` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..store import Store
from . import events, records
from .model import Envelope, EnvelopeState, Recipient, RecipientState, envelope_move, recipient_move
from .notices import NoticeQueue
from .parties import Parties

SERVER = "server"


def has_finished(env: Envelope, r: Recipient) -> bool:
    """Whether ``r`` has signed every document."""
    return all(r.id in d.signed_by for d in env.documents)


def current_order(env: Envelope) -> int | None:
    """The routing order whose group is signing now; None when every signer and approver is done."""
    waiting = [r.routing_order for r in env.recipients if r.signs and not has_finished(env, r)]
    return min(waiting) if waiting else None


def due(env: Envelope) -> list[Recipient]:
    """Pending recipients whose group has started."""
    order = current_order(env)
    return [r for r in env.recipients
            if r.state is RecipientState.PENDING and (order is None or r.routing_order <= order)]


def is_complete(env: Envelope) -> bool:
    return current_order(env) is None


def told(env: Envelope, skip: str | None) -> list[str]:
    """Who hears that an envelope ended (person ids, once each): the sender and every recipient whose turn came
    (a recipient still pending never heard of it)."""
    ids = [env.sender_person_id] + [r.person_id for r in env.recipients if r.state is not RecipientState.PENDING]
    return [i for i in dict.fromkeys(ids) if i != skip]


def first_reminder(env: Envelope, r: Recipient, now: datetime) -> datetime | None:
    if not (r.signs and env.reminder_every_days and env.reminder_max):
        return None
    return now + timedelta(days=env.reminder_every_days)


@dataclass
class Router:
    store: Store
    parties: Parties
    queue: NoticeQueue

    def _turn(self, env: Envelope, r: Recipient, now: datetime, event_id: int) -> None:
        recipient_move(r.state, "notify")
        records.update_recipient(self.store, r.id, state=RecipientState.NOTIFIED,
                                 next_reminder_at=first_reminder(env, r, now))
        self.queue.queue(env, self.parties.person(r.person_id), "sent", event_id, now, recipient_id=r.id,
                         params={"signs": r.signs})

    def advance(self, env: Envelope, now: datetime, event_id: int) -> dict[str, Any]:
        """Start the groups that may start, or complete the envelope; returns the envelope's changed fields
        (for the caller's one :func:`records.update_envelope`).  Runs inside the caller's transaction, on ``env``
        as it is after the caller's own changes; ``event_id`` is the caller's event (the notices announce it)."""
        if env.state is not EnvelopeState.SENT:
            return {}
        if not is_complete(env):
            for r in due(env):
                self._turn(env, r, now, event_id)
            return {}
        state = envelope_move(env.state, "complete")
        completed = events.append(self.store, env.id, "completed", SERVER, now,
                                  {"documents": {d.id: d.current_sha256 for d in env.documents}})
        pending = {r.person_id: r for r in env.recipients if r.state is RecipientState.PENDING}
        for person_id in dict.fromkeys([env.sender_person_id] + [r.person_id for r in env.recipients]):
            first = pending.get(person_id)  # a copy after the last group: this notice is its first
            if first is not None:
                recipient_move(first.state, "notify")
                records.update_recipient(self.store, first.id, state=RecipientState.NOTIFIED)
            self.queue.queue(env, self.parties.person(person_id), "completed", completed, now,
                             recipient_id=first.id if first else None)
        records.stop_reminders(self.store, env.id)
        return {"state": state, "completed_at": now}
