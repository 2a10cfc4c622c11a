"""The notice queue on a real store, with real channels: the outbox, an SMTP relay that hangs or is down and then
comes up (aiosmtpd), a webhook receiver that fails and then recovers (HMAC-signed deliveries checked on arrival).

What is proved: a change commits whatever the channel does, without waiting for it and without holding the write
lock while a relay is slow; a notice is delivered after the commit, marked with the time of its hand-off (which
becomes the recipient's notified_at) and the channel's reference; a failed hand-off is retried after the
configured back-off, exactly, and finally recorded as failed (notice_failed event); an event's notices are
replayed by an operator; an outbox notice is delivered exactly once; the at-least-once window of external
channels is exactly one notice per crash, handed over again with the same id; no notice row holds a code."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from server.envelopes import RecipientState, Tuning
from server.errors import FailedPrecondition, NotFound, PermissionDenied
from server.notify import Message, SmtpChannel, SmtpConfig, WebhookChannel
from server.notify.message import Delivery
from server.webhooks import RetryPolicy, WebhookTarget, verify_signature
from tests.server_helpers import Received, SmtpSink, free_port, http_receiver

from .test_envelopes_world import S, World, make_world, world_fixture  # noqa: F401 - the w fixture

SECRET = b"s" * 32
TUNING = Tuning(notice_max_attempts=3, notice_retry_seconds=10, notice_retry_max_seconds=15)
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def _ms(w: World):
    now = w.clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _rcpt(w: World, env_id: str, name: str):
    return next(r for r in w.svc.get(w.me("alice"), env_id).recipients if r.person_id == w.people[name].id)


def _events(w: World, env_id: str) -> list:
    return w.svc.list_events(w.me("alice"), env_id, page_size=200)


def _webhook(url: str) -> WebhookChannel:
    """The webhook channel with its own quick retries (2 POSTs per hand-off), no real sleeping."""
    return WebhookChannel(WebhookTarget(url, SECRET, allow_http=True,
                                        retry=RetryPolicy(max_attempts=2, base_delay=0.01, timeout=5)),
                          sleep=lambda _: None)


@contextmanager
def _hanging_relay() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (an SMTP relay that hangs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


# -- SMTP: a hanging or dead relay never holds up a change -----------------------------------------------------------
def test_a_hanging_relay_holds_no_lock_and_a_dead_one_fails_nothing(tmp_path: Path) -> None:
    with _hanging_relay() as port:
        smtp = SmtpChannel(SmtpConfig("127.0.0.1", port, security="none", timeout=2))
        w = make_world(tmp_path, email=smtp, tuning=TUNING)
        t0 = time.monotonic()
        env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
        assert time.monotonic() - t0 < 1  # the change did not wait for the relay
        bob = _rcpt(w, env.id, "bob")
        assert bob.state is RecipientState.NOTIFIED and bob.notified_at is None  # queued, not handed over
        dispatcher = threading.Thread(target=w.deliver)
        dispatcher.start()
        time.sleep(0.3)  # the dispatcher is now waiting for the relay's greeting ...
        t1 = time.monotonic()
        w.svc.decline(w.me("carol"), env.id, "the rent is wrong")  # ... and a change goes through meanwhile
        assert time.monotonic() - t1 < 1
        dispatcher.join(30)
    failed = w.svc.notices.find(envelope_id=env.id)
    assert {(n.kind, n.state, n.attempts, n.last_error) for n in failed if n.kind == "sent"} == {
        ("sent", "pending", 1, "SMTP_FAILED")}


def test_smtp_down_then_up_delivers_after_the_back_off(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: connection refused
    w = make_world(tmp_path, email=SmtpChannel(SmtpConfig("127.0.0.1", port, security="none", timeout=2)),
                   tuning=TUNING)
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    failed_at = w.clock.now()
    assert w.deliver() == 1
    [n] = w.svc.notices.find(envelope_id=env.id)
    assert (n.state, n.attempts, n.last_error) == ("pending", 1, "SMTP_FAILED")
    assert n.next_attempt_at == _ms(w) + timedelta(seconds=10) and n.sending_since is None
    sink = SmtpSink()
    relay = Controller(sink, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        w.clock.advance(9.999)
        assert w.deliver() == 0 and sink.envelopes == []  # not before its time
        w.clock.advance(0.001)
        assert w.deliver() == 1
    finally:
        relay.stop()
    [(_, rcpt, raw)] = sink.envelopes
    assert rcpt == ["bob@example.com"] and b"X-Signet-Message-Id: " + n.id.encode() in raw
    assert f"Message-ID: <{n.id}@localhost>".encode() in raw  # stable: a receiver can drop a second copy
    done = w.svc.notices.get(n.id)
    assert (done.state, done.attempts, done.channel, done.delivered_at) == ("delivered", 2, "smtp", _ms(w))
    assert done.message_ref == f"<{n.id}@localhost>"
    bob = _rcpt(w, env.id, "bob")
    assert bob.notified_at == _ms(w) and bob.notified_at > failed_at  # when it was handed over, not queued
    notified = [e for e in _events(w, env.id) if e.type == "notified"]
    assert [(e.at, e.detail["channel"], e.detail["message_id"]) for e in notified] == [(_ms(w), "smtp", n.id)]


# -- webhooks: retries with back-off, final failure, replay ----------------------------------------------------------
def test_a_webhook_that_fails_then_recovers(tmp_path: Path) -> None:
    up = threading.Event()

    def receiver(req: Received, index: int) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, b"{}") if up.is_set() else (503, {}, b"down")

    with http_receiver(receiver) as hook:
        w = make_world(tmp_path, email=_webhook(hook.url), tuning=TUNING)
        env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
        [n] = w.svc.notices.find(envelope_id=env.id)
        delays = []
        for _ in range(2):  # two failed hand-offs, each of two POSTs: next attempts 10 s, then 15 s (the cap) later
            before = _ms(w)
            assert w.deliver() == 1
            delays.append(w.svc.notices.get(n.id).next_attempt_at - before)
            w.clock.advance(delays[-1].total_seconds() - 0.001)
            assert w.deliver() == 0
            w.clock.advance(0.001)
        assert delays == [timedelta(seconds=10), timedelta(seconds=15)] and len(hook.requests) == 4
        up.set()
        assert w.deliver() == 1
    assert len(hook.requests) == 5
    assert {r.headers["X-Signet-Delivery"] for r in hook.requests} == {n.id}  # one delivery id throughout
    for r in hook.requests:
        verify_signature(SECRET, r.headers, r.body, now=w.clock.now().timestamp(), tolerance=600)
    body = hook.requests[-1].body.decode()
    assert '"topic":"envelope.sent"' in body and env.id in body and not re.search(r"\b\d{6}\b", body)
    done = w.svc.notices.get(n.id)
    assert (done.state, done.attempts, done.channel, done.message_ref) == ("delivered", 3, "webhook", n.id)
    assert _rcpt(w, env.id, "bob").notified_at == _ms(w)


def test_a_notice_that_never_gets_through_fails_and_is_replayed(tmp_path: Path) -> None:
    up = threading.Event()

    def receiver(req: Received, index: int) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, b"{}") if up.is_set() else (503, {}, b"down")

    with http_receiver(receiver) as hook:
        w = make_world(tmp_path, email=_webhook(hook.url), tuning=TUNING)
        env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
        sent_event = next(e for e in _events(w, env.id) if e.type == "sent")
        for _ in range(3):
            w.deliver()
            w.clock.advance(60)
        [n] = w.svc.notices.find(envelope_id=env.id)
        assert (n.state, n.attempts, n.last_error, n.next_attempt_at) == ("failed", 3, "WEBHOOK_UNREACHABLE", None)
        assert w.deliver() == 0
        [failed] = [e for e in _events(w, env.id) if e.type == "notice_failed"]
        assert failed.detail == {"notice_id": n.id, "kind": "sent", "person_id": w.people["bob"].id,
                                 "recipient_id": _rcpt(w, env.id, "bob").id, "announces": sent_event.id,
                                 "attempts": 3, "reason": "WEBHOOK_UNREACHABLE"}
        assert _rcpt(w, env.id, "bob").notified_at is None  # never notified

        # only an operator of the sender's organisation replays; anyone else sees no such event
        for who, error in ((w.me("alice"), PermissionDenied), (w.me("bob"), PermissionDenied),
                           (w.other_op, NotFound), (w.me("dave"), NotFound)):
            with pytest.raises(error):
                w.svc.replay_notices(who, sent_event.id)
        with pytest.raises(FailedPrecondition) as e:
            w.svc.replay_notices(w.acme_op, next(x for x in _events(w, env.id) if x.type == "created").id)
        assert e.value.reason == "NO_NOTICES"

        up.set()
        [again] = w.svc.replay_notices(w.acme_op, sent_event.id)
        assert (again.replay_of, again.event_id, again.state, again.kind) == (n.id, sent_event.id, "pending", "sent")
        replayed = [e for e in _events(w, env.id) if e.type == "notices_replayed"]
        assert [(e.actor, e.detail) for e in replayed] == [
            ("operator:op", {"event_id": sent_event.id, "notices": [again.id], "replaying": [n.id]})]
        w.clock.advance(1)
        assert w.deliver() == 1
    assert hook.requests[-1].headers["X-Signet-Delivery"] == again.id
    assert w.svc.notices.get(again.id).state == "delivered"
    assert _rcpt(w, env.id, "bob").notified_at == _ms(w)  # the replay was his first notice to get through
    assert [x.id for x in w.svc.notices_of(w.acme_op, sent_event.id)] == [n.id, again.id]


def test_a_delivered_notice_replayed_goes_out_again_without_touching_notified_at(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    w.deliver()
    first = _rcpt(w, env.id, "bob").notified_at
    sent_event = next(e for e in _events(w, env.id) if e.type == "sent")
    w.clock.advance(60)
    w.svc.replay_notices(w.acme_op, sent_event.id)
    w.svc.replay_notices(w.acme_op, sent_event.id)  # replays repeat the originals, never the replays
    assert w.deliver() == 2
    assert len([e for e in w.outbox.list(to="bob@example.com") if e.topic == "envelope.sent"]) == 3
    assert _rcpt(w, env.id, "bob").notified_at == first
    assert [e.type for e in _events(w, env.id)].count("notified") == 1


# -- exactly once, at least once ---------------------------------------------------------------------------------------
def test_outbox_notices_are_delivered_exactly_once_whatever_runs_again(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
    assert w.deliver() == 2
    for _ in range(2):
        w.restart()
        assert w.deliver() == 0
    assert len([e for e in w.outbox.list(limit=100) if e.topic == "envelope.sent"]) == 2
    ids = {n.id for n in w.svc.notices.find(envelope_id=env.id)}
    assert ids == {e.id for e in w.outbox.list(limit=100) if e.topic == "envelope.sent"}  # outbox row id = notice


class _DiesAfterHandOff:
    """A channel that hands the message over, then the process 'dies' before the dispatcher can mark it."""

    name = "webhook"

    def __init__(self, inner: WebhookChannel) -> None:
        self.inner = inner

    def send(self, message: Message) -> Delivery:
        self.inner.send(message)
        raise SystemExit("killed")  # not an Exception: nothing in the dispatcher catches it


def test_the_at_least_once_window_is_one_notice_per_crash(tmp_path: Path) -> None:
    with http_receiver(lambda req, i: (200, {}, b"{}")) as hook:
        webhook = _webhook(hook.url)
        w = make_world(tmp_path, email=_DiesAfterHandOff(webhook), tuning=TUNING)
        env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
        with pytest.raises(SystemExit):
            w.deliver()  # the first notice reached the receiver; its mark never committed
        claimed = [n for n in w.svc.notices.find(envelope_id=env.id) if n.sending_since is not None]
        assert len(claimed) == 1 and claimed[0].state == "pending"
        w.restart(notifier=_router(w, webhook))
        w.clock.advance(1)
        assert w.deliver() == 2
    notices = {n.id: n for n in w.svc.notices.find(envelope_id=env.id)}
    assert {n.state for n in notices.values()} == {"delivered"}
    assert notices[claimed[0].id].in_doubt == 1 and sum(n.in_doubt for n in notices.values()) == 1
    got = [r.headers["X-Signet-Delivery"] for r in hook.requests]
    assert sorted(got) == sorted([*notices, claimed[0].id])  # one notice twice, same id; the other once


def _router(w: World, email):
    from server.notify import Router
    from server.notify.message import AddressKind

    return Router(w.outbox, {AddressKind.EMAIL: email})


def test_no_notice_row_holds_a_code_or_a_text(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
    w.sign(env, "bob")  # a signing code went to Bob's phone
    w.svc.decline(w.me("carol"), env.id, "clause 7 is wrong")
    codes = set(re.findall(r"\b\d{6}\b", " ".join(w.outbox.read(e.id).body for e in w.outbox.list(limit=100)
                                                  if e.topic.startswith("otp."))))
    assert codes
    rows = w.store.query("SELECT * FROM envelope_notices")
    dump = repr(rows)
    assert not any(code in dump for code in codes) and "Lease of the harbour crane" not in dump
    assert {r["kind"] for r in rows} == {"sent", "declined"}
    assert any(r["params"] == '{"by": "Carol Envelope", "reason": "clause 7 is wrong"}' for r in rows)
