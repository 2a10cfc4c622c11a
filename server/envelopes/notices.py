"""Notices about envelopes: queued in the transaction of the change they announce, delivered after it commits.

The transactional outbox pattern.  A change (send, a signature that starts the next group, completion, decline,
void, expiry, a reminder) inserts one ``envelope_notices`` row per person told -- address, kind, the envelope,
the id of the event it announces, and ``params``, what the text is rendered from besides the envelope (a
decline's reason, a reminder's number): never a one-time code (signing codes go to the phone at once,
:mod:`.signing`), never a document's bytes.  The change commits whatever the channels do; :mod:`.dispatch`
renders each row and hands it to the notifier after the commit.

A notice's id is also its message id: the outbox row's id, the webhook's ``X-Signet-Delivery``, the e-mail's
``X-Signet-Message-Id`` and ``Message-ID``, so a receiver can drop a notice handed over twice (the one window:
:mod:`.dispatch`).  :meth:`NoticeQueue.replay` queues the notices of an event again, as new rows (new ids)
pointing at the ones they repeat.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import from_text
from ..errors import InvalidArgument, NotFound
from ..identity import Person
from ..notify.message import Address, AddressKind
from ..store import Row, Sealed, Store
from .model import Envelope
from .records import text

# kind -> what it tells; the message topic is "envelope.<kind>"
KINDS = ("sent", "reminder", "completed", "declined", "voided", "expired")
STATES = ("pending", "delivered", "failed", "cancelled")


@dataclass(frozen=True)
class Notice:
    id: str
    event_id: int
    envelope_id: str
    recipient_id: str | None  # the recipient whose first notice this is: its delivery sets their notified_at
    person_id: str
    to: Address
    kind: str
    params: Mapping[str, Any] = field(repr=False)
    replay_of: str | None
    state: str  # pending | delivered | failed | cancelled
    attempts: int
    next_attempt_at: datetime | None
    sending_since: datetime | None
    in_doubt: int
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    channel: str
    message_ref: str

    @property
    def topic(self) -> str:
        return f"envelope.{self.kind}"


def _time(value: Any) -> datetime | None:
    return from_text(value) if value else None


def _notice(r: Row) -> Notice:
    return Notice(
        id=r["id"], event_id=int(r["event_id"]), envelope_id=r["envelope_id"], recipient_id=r["recipient_id"],
        person_id=r["person_id"], to=Address(AddressKind(r["to_kind"]), r["to_value"]), kind=r["kind"],
        params=json.loads(r["params"]), replay_of=r["replay_of"], state=r["state"], attempts=int(r["attempts"]),
        next_attempt_at=_time(r["next_attempt_at"]), sending_since=_time(r["sending_since"]),
        in_doubt=int(r["in_doubt"]), last_error=r["last_error"], created_at=from_text(r["created_at"]),
        delivered_at=_time(r["delivered_at"]), channel=r["channel"], message_ref=r["message_ref"])


def render(kind: str, env: Envelope, params: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) of a notice: the envelope's title and sender, who acts; nothing secret."""
    title, sender, ref = env.title, env.sender_name, f"Envelope: {env.id}\n"
    link = f"Open it in your browser: {params['portal_link']}\n" if params.get("portal_link") else ""
    if kind == "sent":
        action = "review and sign it with your token" if params.get("signs", True) else \
            "it is sent to you for your information"
        body = (f"{sender} sent you the envelope \"{title}\" ({len(env.documents)} document(s)): {action}.\n{ref}"
                + (f"Message from the sender: {env.message}\n" if env.message else "") + link)
        return f"Signet: \"{title}\" from {sender}", body
    if kind == "reminder":
        until = f" before {params['expires_at']}" if params.get("expires_at") else ""
        return (f"Signet reminder: \"{title}\" from {sender} waits for your signature",
                f"Reminder {params.get('number', 1)}: the envelope \"{title}\" from {sender} waits for your "
                f"signature{until}.\n{ref}{link}")
    if kind == "completed":
        return (f"Signet: \"{title}\" is completed",
                f"Every party has signed the envelope \"{title}\" from {sender}.\n{ref}")
    if kind == "declined":
        return (f"Signet: \"{title}\" was declined",
                f"{params.get('by', 'A recipient')} declined to sign the envelope \"{title}\" from {sender}; it is "
                f"closed.\nReason given: {params.get('reason', '')}\n{ref}")
    if kind == "voided":
        return (f"Signet: \"{title}\" was voided",
                f"The envelope \"{title}\" from {sender} was voided by {params.get('by', 'the sender')}; nothing "
                f"more is to be signed.\nReason given: {params.get('reason', '')}\n{ref}")
    if kind == "expired":
        return (f"Signet: \"{title}\" has expired",
                f"The envelope \"{title}\" from {sender} expired at {params.get('expires_at', '')} before every "
                f"party had signed; nothing more can be signed.\n{ref}")
    raise ValueError(f"unknown notice kind {kind!r}")


class NoticeQueue:
    """The ``envelope_notices`` table: rows written inside the caller's transaction, read by the dispatcher."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # the portal's link maker (envelope, recipient id) -> URL; set when the portal is on: "your turn" and
        # reminder notices then carry a link the recipient opens in a browser (server.portal)
        self.link_for: Callable[[Envelope, str], str] | None = None

    def queue(self, env: Envelope, to: Person, kind: str, event_id: int, at: datetime, *,
              recipient_id: str | None = None, params: Mapping[str, Any] | None = None,
              replay_of: str | None = None) -> str:
        """One notice to ``to`` (by e-mail), due at once; call inside the transaction of the change."""
        if kind not in KINDS:
            raise ValueError(f"unknown notice kind {kind!r}")
        notice_id = "ntc_" + secrets.token_hex(12)
        if self.link_for is not None and recipient_id and kind in ("sent", "reminder"):
            params = {**(params or {}), "portal_link": self.link_for(env, recipient_id)}
        self._store.insert("envelope_notices", {
            "id": notice_id, "event_id": event_id, "envelope_id": env.id, "recipient_id": recipient_id,
            "person_id": to.id, "to_kind": AddressKind.EMAIL.value, "to_value": to.email, "kind": kind,
            "params": Sealed(json.dumps(dict(params or {}), ensure_ascii=False, sort_keys=True)),
            "replay_of": replay_of,
            "state": "pending", "attempts": 0, "next_attempt_at": text(at), "sending_since": None, "in_doubt": 0,
            "last_error": "", "created_at": text(at), "delivered_at": None, "channel": "", "message_ref": ""})
        return notice_id

    def get(self, notice_id: str) -> Notice:
        row = self._store.query_one("SELECT * FROM envelope_notices WHERE id = ?", (notice_id,))
        if row is None:
            raise NotFound(f"no notice {notice_id!r}", reason="NOTICE_NOT_FOUND")
        return _notice(row)

    def due(self, now: datetime, limit: int) -> list[Notice]:
        """Pending notices whose next attempt has come, oldest first (index envelope_notices_due)."""
        rows = self._store.query("SELECT * FROM envelope_notices WHERE state = 'pending' AND next_attempt_at <= ? "
                                 "ORDER BY next_attempt_at, created_at, id LIMIT ?", (text(now), limit))
        return [_notice(r) for r in rows]

    def of_event(self, event_id: int) -> list[Notice]:
        rows = self._store.query("SELECT * FROM envelope_notices WHERE event_id = ? ORDER BY created_at, id",
                                 (event_id,))
        return [_notice(r) for r in rows]

    def find(self, *, envelope_id: str | None = None, event_id: int | None = None, state: str | None = None,
             limit: int = 100) -> list[Notice]:
        """Newest first, filtered (signet-admin notice list)."""
        if state is not None and state not in STATES:
            raise InvalidArgument(f"a notice state is one of {', '.join(STATES)}", reason="NOTICE_STATE_INVALID")
        where, params = _filters(envelope_id=envelope_id, event_id=event_id, state=state)
        sql = "SELECT * FROM envelope_notices" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        rows = self._store.query(sql + " ORDER BY created_at DESC, id LIMIT ?", [*params, int(limit)])
        return [_notice(r) for r in rows]

    def replay(self, originals: Sequence[Notice], env: Envelope, people: Mapping[str, Person],
               at: datetime) -> list[str]:
        """New rows repeating ``originals`` (to the people's addresses as they are now: a corrected address is
        often why), for the same event.  A repeated first notice still sets ``notified_at`` if no earlier copy
        reached the channel."""
        return [self.queue(env, people[n.person_id], n.kind, n.event_id, at, recipient_id=n.recipient_id,
                           params=n.params, replay_of=n.id) for n in originals]


def _filters(**values: Any) -> tuple[list[str], list[Any]]:
    where = [f"{k} = ?" for k, v in values.items() if v is not None]
    return where, [v for v in values.values() if v is not None]
