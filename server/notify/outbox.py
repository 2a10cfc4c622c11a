"""The outbox channel: messages kept in a store table for `signet-admin outbox` (the default channel).

Bodies may hold one-time codes, so they are stored encrypted with the server's
:class:`~server.sealing.SecretBox` (bound to the row id); recipient, subject and topic are in clear
for listing.  Reading a message marks it read; nothing is ever deleted here except by :meth:`purge`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import Clock, SystemClock, from_text, to_text
from ..errors import NotFound
from ..sealing import SecretBox
from ..store import Sealed, Store
from .message import Address, AddressKind, Delivery, Message

log = logging.getLogger(__name__)


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE notify_outbox ("
        " id TEXT PRIMARY KEY,"
        " created_at TEXT NOT NULL,"
        " topic TEXT NOT NULL,"
        " to_kind TEXT NOT NULL,"
        " to_value TEXT NOT NULL,"
        " subject TEXT NOT NULL,"
        " body_sealed BLOB NOT NULL,"
        " read_at TEXT)"
    )
    store.execute("CREATE INDEX notify_outbox_to ON notify_outbox (to_value, created_at)")


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    created_at: datetime
    topic: str
    to: Address
    subject: str
    read_at: datetime | None


@dataclass(frozen=True)
class OutboxMessage:
    entry: OutboxEntry
    body: str = field(repr=False)


class OutboxChannel:
    name = "outbox"

    def __init__(self, store: Store, box: SecretBox, clock: Clock | None = None) -> None:
        self._store = store
        self._box = box
        self._clock = clock or SystemClock()
        store.migrate("notify", MIGRATIONS)

    @property
    def store(self) -> Store:
        """The store the outbox table lives in (a caller writing to the same store can make a message and its own
        bookkeeping commit together)."""
        return self._store

    @staticmethod
    def _aad(message_id: str) -> bytes:
        return b"signet/notify/outbox/v1\x00" + message_id.encode("ascii")

    def send(self, message: Message) -> Delivery:
        self._store.insert("notify_outbox", {
            "id": message.id,
            "created_at": to_text(self._clock.now()),
            "topic": message.topic,
            "to_kind": message.to.kind.value,
            "to_value": message.to.value,
            "subject": Sealed(message.subject),
            "body_sealed": self._box.encrypt(message.body.encode("utf-8"), self._aad(message.id)),
        })
        log.info("outbox: queued message %s (%s)", message.id, message.topic)
        return Delivery(message.id, self.name, message.id)

    def list(self, *, to: str | None = None, unread_only: bool = False, limit: int = 100) -> list[OutboxEntry]:
        sql = "SELECT id, created_at, topic, to_kind, to_value, subject, read_at FROM notify_outbox"
        where: list[str] = []
        params: list[object] = []
        if to is not None:
            where.append("to_value = ?")
            params.append(to)
        if unread_only:
            where.append("read_at IS NULL")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id LIMIT ?"
        params.append(int(limit))
        return [_entry(r) for r in self._store.query(sql, params)]

    def read(self, message_id: str) -> OutboxMessage:
        with self._store.transaction():
            row = self._store.query_one(
                "SELECT id, created_at, topic, to_kind, to_value, subject, read_at, body_sealed "
                "FROM notify_outbox WHERE id = ?", (message_id,))
            if row is None:
                raise NotFound(f"no outbox message {message_id!r}")
            if row["read_at"] is None:
                row["read_at"] = to_text(self._clock.now())
                self._store.execute("UPDATE notify_outbox SET read_at = ? WHERE id = ?", (row["read_at"], message_id))
        body = self._box.decrypt(bytes(row["body_sealed"]), self._aad(message_id)).decode("utf-8")
        return OutboxMessage(_entry(row), body)

    def purge(self, before: datetime) -> int:
        return self._store.execute("DELETE FROM notify_outbox WHERE created_at < ?", (to_text(before),))


def _entry(row: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        created_at=from_text(row["created_at"]),
        topic=row["topic"],
        to=Address(AddressKind(row["to_kind"]), row["to_value"]),
        subject=row["subject"],
        read_at=from_text(row["read_at"]) if row["read_at"] else None,
    )
