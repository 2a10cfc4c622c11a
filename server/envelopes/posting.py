"""The steps CreateEnvelope, SendEnvelope and BulkSendEnvelopes share: the recipients of a new draft, writing the
draft, and sending it.  :meth:`Post.insert_draft` and :meth:`Post.send_draft` run inside the caller's transaction
(the caller recalls and remembers its idempotency key around them and rings the bell after the commit).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..errors import FailedPrecondition, NotFound
from ..identity import Principal
from ..store import Store
from . import drafting, events, records
from .access import actor
from .drafting import RecipientInput
from .model import Envelope, Recipient, RecipientState, SigningMethod, envelope_move
from .parties import Parties
from .routing import Router


class Post:
    def __init__(self, store: Store, parties: Parties, router: Router) -> None:
        self._store = store
        self._parties = parties
        self._router = router

    def recipients(self, specs: Sequence[RecipientInput], *, placeholders: bool) -> tuple[Recipient, ...]:
        """The recipients of a new draft, each an approved person (NotFound ``PERSON_NOT_FOUND``,
        FailedPrecondition ``NOT_APPROVED``) -- or, with ``placeholders`` (a template), a ``{{name}}`` blank."""
        out = []
        for r in specs:
            if placeholders and drafting.is_placeholder(r.person_id):
                org_id, legal_name = "", ""
            else:
                person = self._parties.approved(r.person_id, "recipient")
                org_id, legal_name = person.org_id, person.legal_name
            out.append(Recipient("rcp_" + secrets.token_hex(12), r.person_id, org_id, legal_name,
                                 drafting.role_of(r), r.routing_order, r.signing_method or SigningMethod.TOKEN,
                                 RecipientState.PENDING, field=r.field, form_fields=r.form_fields))
        return tuple(out)

    def reload(self, env: Envelope) -> Envelope:
        found = records.load(self._store, env.id)
        if found is None:  # envelopes are never deleted
            raise NotFound(f"no envelope {env.id!r}", reason="ENVELOPE_NOT_FOUND")
        return found

    def insert_draft(self, p: Principal, env: Envelope, now: datetime, **detail: Any) -> Envelope:
        """Write the draft ``env`` (its document blobs stored already) and its ``created`` event (``detail`` added
        to the event's)."""
        records.insert_envelope(self._store, env)
        for i, d in enumerate(env.documents):
            records.insert_document(self._store, env.id, i, d, now)
        for i, r in enumerate(env.recipients):
            records.insert_recipient(self._store, env.id, i, r)
        events.append(self._store, env.id, "created", actor(p), now, {
            "title": env.title, "documents": {d.id: d.current_sha256 for d in env.documents},
            "recipients": {r.id: r.person_id for r in env.recipients}, **detail})
        return self.reload(env)

    def send_draft(self, p: Principal, env: Envelope, now: datetime) -> Envelope:
        """Lock the documents of ``env`` (as read in this transaction), record the send time, start the first
        routing group.  The caller has checked that the blobs hold the bytes being locked."""
        state = envelope_move(env.state, "send")
        blanks = [r.person_id for r in env.recipients if drafting.is_placeholder(r.person_id)]
        if blanks:
            raise FailedPrecondition(f"recipient {blanks[0]} is a placeholder: this draft is a bulk-send template, "
                                     "sent with BulkSendEnvelopes (signet envelope bulk-send)",
                                     reason="RECIPIENT_PLACEHOLDER")
        expires = now + timedelta(days=env.expires_in_days)
        records.lock_documents(self._store, env)
        sent_event = events.append(self._store, env.id, "sent", actor(p), now, {
            "sent_at": records.text(now), "expires_at": records.text(expires),
            "documents": {d.id: d.current_sha256 for d in env.documents}})
        changes = self._router.advance(replace(env, state=state, sent_at=now, expires_at=expires), now, sent_event)
        records.update_envelope(self._store, env, state=state, sent_at=now, expires_at=expires, **changes)
        return self.reload(env)
