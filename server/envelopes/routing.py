"""Routing: which recipients' turn it is, and what happens when a group has signed.

Recipients with equal ``routing_order`` form a parallel group.  The current group is the lowest order that
still has a signer or approver who has not signed every document; every recipient up to it (copies included)
has been notified.  When the last signer or approver has signed every document the envelope is completed and
everyone -- the sender, every signer, approver and copy -- gets a completion notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..store import Store
from . import events, records
from .model import Envelope, EnvelopeState, Recipient, RecipientState, envelope_move, recipient_move
from .notices import Notices, Sent
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


@dataclass
class Router:
    store: Store
    parties: Parties
    notices: Notices

    def _notified(self, env: Envelope, r: Recipient, sent: Sent) -> None:
        recipient_move(r.state, "notify")
        records.update_recipient(self.store, r.id, state=RecipientState.NOTIFIED, notified_at=sent.at)
        events.append(self.store, env.id, "notified", SERVER, sent.at, {
            "recipient_id": r.id, "person_id": r.person_id, "channel": sent.delivery.channel,
            "message_id": sent.delivery.message_id, "notified_at": records.text(sent.at)})

    def advance(self, env: Envelope, now: datetime) -> dict[str, Any]:
        """Notify the groups that may start, or complete the envelope; returns the envelope's changed fields
        (for the caller's one :func:`records.update_envelope`).  Runs inside the caller's transaction, on
        ``env`` as it is after the caller's own changes."""
        if env.state is not EnvelopeState.SENT:
            return {}
        if not is_complete(env):
            for r in due(env):
                self._notified(env, r, self.notices.your_turn(env, self.parties.person(r.person_id), signs=r.signs))
            return {}
        state = envelope_move(env.state, "complete")
        events.append(self.store, env.id, "completed", SERVER, now,
                      {"documents": {d.id: d.current_sha256 for d in env.documents}})
        sent_to = {env.sender_person_id: self.notices.completed(env, self.parties.person(env.sender_person_id))}
        for r in env.recipients:
            if r.person_id not in sent_to:
                sent_to[r.person_id] = self.notices.completed(env, self.parties.person(r.person_id))
            if r.state is RecipientState.PENDING:  # a copy after the last group: this notice is its first
                self._notified(env, r, sent_to[r.person_id])
        return {"state": state, "completed_at": now}
