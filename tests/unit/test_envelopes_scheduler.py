"""The scheduler on a real store with a ManualClock: envelopes expire at their expiry exactly (refused from that
instant, recorded by the next pass, sender and notified recipients told), reminders follow the schedule to the
millisecond and stop when the recipient signs or the envelope ends, nothing is done twice across a restart (a
new EnvelopeService on the same store), and the background threads deliver and stop cleanly."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from server.envelopes import EnvelopeState, RecipientState, Tuning
from server.envelopes.scheduler import next_due
from server.errors import FailedPrecondition, InvalidArgument

from .test_envelopes_world import C, S, World, make_world, world_fixture  # noqa: F401 - the w fixture

DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


def _t0(env):
    assert env.sent_at is not None
    return env.sent_at


def _at(w: World, when) -> None:
    w.clock.set(when)


def _rcpt(w: World, env_id: str, name: str):
    return next(r for r in w.svc.get(w.me("alice"), env_id).recipients if r.person_id == w.people[name].id)


def _topics(w: World, topic: str) -> list[str]:
    return sorted(e.to.value for e in w.outbox.list(limit=500) if e.topic == topic)


def _events(w: World, env_id: str, type_: str) -> list:
    return [e for e in w.svc.list_events(w.me("alice"), env_id, page_size=200) if e.type == type_]


# -- expiry ----------------------------------------------------------------------------------------------------------
def test_an_envelope_expires_at_its_expiry_exactly(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1), ("erin", S, 2)],
                                             expires_in_days=2).id)
    w.deliver()
    assert env.expires_at is not None and env.expires_at - _t0(env) == 2 * DAY
    doc = env.documents[0]

    _at(w, env.expires_at - MS)  # a millisecond before: nothing happens, everything is still allowed
    assert w.svc.scheduler.run_once().expired == ()
    assert w.svc.get(w.me("bob"), env.id).state is EnvelopeState.SENT
    w.svc.get_document(w.me("bob"), env.id, doc.id)  # Bob views it

    _at(w, env.expires_at)  # the instant of expiry: closed before any pass has run
    assert w.svc.get(w.me("alice"), env.id).state is EnvelopeState.EXPIRED
    assert [e.state for e in w.svc.list_envelopes(w.me("alice")).envelopes] == [EnvelopeState.EXPIRED]
    for call in (lambda: w.svc.start_signing(w.me("bob"), env.id, doc.id, doc.current_sha256),
                 lambda: w.svc.decline(w.me("carol"), env.id, "too late"),
                 lambda: w.svc.void(w.me("alice"), env.id, "too late")):
        with pytest.raises(FailedPrecondition) as e:
            call()
        assert e.value.reason == "ENVELOPE_EXPIRED"
    before = w.store.query_one("SELECT state FROM envelopes WHERE id = ?", (env.id,))
    assert before == {"state": "sent"}  # ... and recorded by the scheduler's next pass

    w.clock.advance(3.5)  # the pass comes a little later
    assert w.svc.scheduler.run_once().expired == (env.id,)
    row = w.store.query_one("SELECT state, ended_at FROM envelopes WHERE id = ?", (env.id,))
    assert row == {"state": "expired", "ended_at": env.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    [expired] = _events(w, env.id, "expired")
    assert expired.at == w.clock.now().replace(microsecond=w.clock.now().microsecond // 1000 * 1000)
    assert expired.actor == "server" and expired.detail["unsigned"] == [r.id for r in env.recipients]
    assert w.svc.scheduler.run_once().expired == ()  # once
    assert len(_events(w, env.id, "expired")) == 1
    w.deliver()
    # the sender and the recipients whose turn came; Erin (group 2) never heard of it
    assert _topics(w, "envelope.expired") == ["alice@example.com", "bob@example.com", "carol@example.com"]
    body = w.outbox.read(next(e.id for e in w.outbox.list(to="bob@example.com") if e.topic == "envelope.expired"))
    assert env.id in body.body and "expired" in body.body


def test_an_envelope_completed_or_voided_before_its_expiry_never_expires(w: World) -> None:
    done = w.sign(w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)], expires_in_days=1).id), "bob")
    voided = w.svc.void(w.me("alice"), w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)],
                                                                          expires_in_days=1).id).id, "no")
    w.clock.advance(2 * 86400)
    assert w.svc.scheduler.run_once().expired == ()
    assert w.svc.get(w.me("alice"), done.id).state is EnvelopeState.COMPLETED
    assert w.svc.get(w.me("alice"), voided.id).state is EnvelopeState.VOIDED


# -- reminders -------------------------------------------------------------------------------------------------------
def test_reminders_follow_the_schedule_to_the_millisecond(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 2)], expires_in_days=30,
                                             reminder_every_days=2, reminder_max=2).id)
    w.deliver()
    t0 = _t0(env)
    assert (env.reminder_every_days, env.reminder_max) == (2, 2)
    assert _rcpt(w, env.id, "bob").next_reminder_at == t0 + 2 * DAY
    assert _rcpt(w, env.id, "carol").next_reminder_at is None  # her turn has not come

    _at(w, t0 + 2 * DAY - MS)
    assert w.svc.scheduler.run_once().reminded == ()
    _at(w, t0 + 2 * DAY)
    bob_id = _rcpt(w, env.id, "bob").id
    assert w.svc.scheduler.run_once().reminded == (bob_id,)
    bob = _rcpt(w, env.id, "bob")
    assert (bob.reminders_sent, bob.next_reminder_at) == (1, t0 + 4 * DAY)
    [first] = _events(w, env.id, "reminded")
    assert first.at == t0 + 2 * DAY and first.detail == {
        "recipient_id": bob_id, "person_id": w.people["bob"].id, "reminder": 1, "of": 2,
        "due_at": (t0 + 2 * DAY).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "next_reminder_at": (t0 + 4 * DAY).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert w.deliver() == 1
    [entry] = [e for e in w.outbox.list(to="bob@example.com") if e.topic == "envelope.reminder"]
    assert entry.created_at == t0 + 2 * DAY and "Reminder 1" in w.outbox.read(entry.id).body

    _at(w, t0 + 4 * DAY + 5 * MS)  # a pass a little after the due time: the schedule does not drift
    w.svc.scheduler.run_once()
    bob = _rcpt(w, env.id, "bob")
    assert (bob.reminders_sent, bob.next_reminder_at) == (2, None)  # the last one
    _at(w, t0 + 20 * DAY)
    assert w.svc.scheduler.run_once().reminded == ()
    assert len(_events(w, env.id, "reminded")) == 2

    w.sign(env, "bob")  # Carol's turn begins now: her first reminder is two days from now
    carol = _rcpt(w, env.id, "carol")
    assert carol.state is RecipientState.NOTIFIED and carol.next_reminder_at == t0 + 22 * DAY
    assert _rcpt(w, env.id, "bob").next_reminder_at is None


def test_missed_periods_are_not_made_up_in_a_burst() -> None:
    due = next_due  # the schedule's next step after now, counting from the due time
    from datetime import UTC, datetime

    t = datetime(2030, 1, 1, tzinfo=UTC)
    assert due(t, 2, t) == t + 2 * DAY
    assert due(t, 2, t + 7 * DAY) == t + 8 * DAY
    assert due(t, 2, t + 8 * DAY) == t + 10 * DAY


def test_a_server_down_for_a_week_sends_one_reminder_then_keeps_the_schedule(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)], reminder_every_days=2, reminder_max=5).id)
    _at(w, _t0(env) + 7 * DAY)
    w.svc.scheduler.run_once()
    w.svc.scheduler.run_once()
    bob = _rcpt(w, env.id, "bob")
    assert (bob.reminders_sent, bob.next_reminder_at) == (1, _t0(env) + 8 * DAY)


def test_no_reminder_for_a_copy_or_a_recipient_who_signed(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1), ("erin", C, 1)],
                                             reminder_every_days=1).id)
    assert env.reminder_max == 3  # the default when only the period is given
    assert _rcpt(w, env.id, "erin").next_reminder_at is None  # a copy is never reminded
    w.sign(env, "bob")
    assert _rcpt(w, env.id, "bob").next_reminder_at is None
    _at(w, _t0(env) + 1 * DAY)
    assert w.svc.scheduler.run_once().reminded == (_rcpt(w, env.id, "carol").id,)


def test_a_queued_reminder_is_not_sent_once_the_envelope_ended(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)], reminder_every_days=1).id)
    w.deliver()
    _at(w, _t0(env) + 1 * DAY)
    assert len(w.svc.scheduler.run_once().reminded) == 2  # recorded and queued ...
    w.svc.decline(w.me("carol"), env.id, "the rent is wrong")  # ... and the envelope ends before they went out
    assert w.store.query("SELECT id FROM envelope_recipients WHERE envelope_id = ? AND next_reminder_at IS NOT "
                         "NULL", (env.id,)) == []
    w.deliver()
    cancelled = w.svc.notices.find(envelope_id=env.id, state="cancelled")
    assert sorted(n.person_id for n in cancelled) == sorted(w.people[n].id for n in ("bob", "carol"))
    assert {(n.kind, n.last_error) for n in cancelled} == {("reminder", "ENVELOPE_DECLINED")}
    assert _topics(w, "envelope.reminder") == []
    assert _topics(w, "envelope.declined") == ["alice@example.com", "bob@example.com"]
    _at(w, _t0(env) + 5 * DAY)
    assert w.svc.scheduler.run_once().reminded == ()


def test_a_bad_reminder_schedule_is_refused(w: World) -> None:
    for every, most in ((0, 2), (366, 1), (2, 21)):
        with pytest.raises(InvalidArgument) as e:
            w.create("alice", [("bob", S, 1)], reminder_every_days=every, reminder_max=most)
        assert e.value.reason == "REMINDERS_INVALID"
    assert w.create("alice", [("bob", S, 1)]).reminder_every_days == 0  # none by default


# -- durability: a restart never repeats what the scheduler recorded -------------------------------------------------
def test_no_duplicate_reminder_or_expiry_across_a_restart(w: World) -> None:
    remind = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)], reminder_every_days=1,
                                                reminder_max=2).id)
    expire = w.svc.send(w.me("alice"), w.create("alice", [("carol", S, 1)], expires_in_days=1).id)
    w.deliver()
    _at(w, _t0(remind) + 1 * DAY)
    passed = w.svc.scheduler.run_once()  # the reminder and the expiry recorded, their notices queued ...
    assert passed.expired == (expire.id,) and len(passed.reminded) == 1
    # ... and the server dies before its dispatcher ran: a new service on the same store
    w.restart()
    again = w.svc.scheduler.run_once()
    assert again.expired == () and again.reminded == ()
    assert w.deliver() == 3  # the reminder to Bob, the expiry notices to Alice and Carol: once each
    assert _topics(w, "envelope.reminder") == ["bob@example.com"]
    assert _topics(w, "envelope.expired") == ["alice@example.com", "carol@example.com"]
    w.restart()
    assert w.svc.scheduler.run_once() == again and w.deliver() == 0
    assert len(_events(w, remind.id, "reminded")) == 1 and len(_events(w, expire.id, "expired")) == 1
    _at(w, _t0(remind) + 2 * DAY)  # the schedule goes on from the store
    assert len(w.restart().scheduler.run_once().reminded) == 1


# -- the threads ------------------------------------------------------------------------------------------------------
def test_the_background_threads_deliver_at_once_and_stop_cleanly(tmp_path: Path) -> None:
    w = make_world(tmp_path, tuning=Tuning(poll_seconds=30))  # a long poll: only the bell can be that quick
    w.svc.start()
    try:
        names = {t.name for t in threading.enumerate()}
        assert {"envelope-scheduler", "envelope-notices"} <= names
        env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
        deadline = time.monotonic() + 5
        while _rcpt(w, env.id, "bob").notified_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _rcpt(w, env.id, "bob").notified_at is not None  # woken by the commit, not by the 30 s poll
    finally:
        t0 = time.monotonic()
        w.svc.stop(timeout=5)
        assert time.monotonic() - t0 < 2
    assert not {"envelope-scheduler", "envelope-notices"} & {t.name for t in threading.enumerate()}
