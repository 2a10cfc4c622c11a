"""The outbox channel: listing without bodies, reading marks read, bodies encrypted at rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import NotFound
from server.notify import Address, AddressKind, Message, OutboxChannel, Router
from server.sealing import AesGcmBox
from server.store import open_store
from tests.server_helpers import db_bytes


def test_send_list_read(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clock = ManualClock()
    outbox = OutboxChannel(open_store(str(db)), AesGcmBox.generate(), clock)
    first = Message(Address.phone("+8613800138000"), "Code", "secret body QUOKKA", topic="otp.x")
    clock.advance(1)
    second = Message(Address.email("a@example.com"), "Hello", "other body", topic="envelope.sent")
    d1 = outbox.send(first)
    clock.advance(1)
    outbox.send(second)
    assert d1.channel == "outbox" and d1.reference == first.id
    assert [e.id for e in outbox.list()] == [second.id, first.id]  # newest first
    assert [e.id for e in outbox.list(to="+8613800138000")] == [first.id]
    entry = outbox.list(to="+8613800138000")[0]
    assert entry.to == Address(AddressKind.PHONE, "+8613800138000") and entry.topic == "otp.x"
    assert "QUOKKA" not in repr(entry) and "QUOKKA" not in repr(first)
    read = outbox.read(first.id)
    assert read.body == "secret body QUOKKA" and read.entry.read_at == clock.now()
    assert "QUOKKA" not in repr(read)
    clock.advance(5)
    assert outbox.read(first.id).entry.read_at == read.entry.read_at  # first reading time is kept
    assert [e.id for e in outbox.list(unread_only=True)] == [second.id]
    data = db_bytes(db)
    assert b"+8613800138000" in data and b"secret body" not in data
    with pytest.raises(NotFound):
        outbox.read("nope")
    assert outbox.purge(clock.now()) == 2 and outbox.list() == []


def test_router_picks_channel_by_address_kind(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    box = AesGcmBox.generate()
    default = OutboxChannel(store, box)
    # two outboxes in two stores stand in for "SMS gateway" and "default"
    sms = OutboxChannel(open_store(str(tmp_path / "sms.db")), box)
    router = Router(default, {AddressKind.PHONE: sms})
    router.send(Message(Address.phone("+8613800138000"), "s", "b"))
    router.send(Message(Address.email("a@example.com"), "s", "b"))
    assert [e.to.kind for e in sms.list()] == [AddressKind.PHONE]
    assert [e.to.kind for e in default.list()] == [AddressKind.EMAIL]
