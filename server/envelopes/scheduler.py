"""The scheduler's work: expiring sent envelopes at ``expires_at`` and reminding signers on their schedule.

:meth:`Scheduler.run_once` is one pass at the injected clock's time (``signet-server run`` calls it every
``[envelopes] scheduler_seconds`` from a thread, :mod:`.background`; tests call it after moving a ManualClock).
Both queries read indexed columns only: sent envelopes by ``(state, expires_at)``, recipients by
``next_reminder_at``.

**Expiry.** A sent envelope is closed to every action from the instant of its ``expires_at``
(:func:`.model.as_of`); the pass records it: state ``expired`` (``ended_at`` = ``expires_at``), the ``expired``
event (at the time of the pass), every pending reminder dropped, and an ``expired`` notice to the sender and to
every recipient whose turn came.

**Reminders.** A signer or approver's first reminder is due ``reminder_every_days`` after their turn began,
the next ones every ``reminder_every_days`` after that, at most ``reminder_max`` in all.  A reminder is
*recorded before it is sent*: one transaction counts it (``reminders_sent``), moves ``next_reminder_at`` on,
writes the ``reminded`` event and queues the notice, which the dispatcher delivers after the commit -- so a
restart never sends a reminder twice (the notice itself has the dispatcher's guarantees).  Periods missed
while the server was down are not made up in a burst: one reminder, and the next on the schedule's next step
after now.  A recipient who signed, declined, or whose envelope ended gets no reminder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock
from ..store import Store
from . import events, records
from .model import EnvelopeState, RecipientState, as_of, envelope_move
from .notices import NoticeQueue
from .parties import Parties
from .records import ms, text
from .routing import SERVER, has_finished, told

log = logging.getLogger(__name__)

BATCH = 100


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    expired: tuple[str, ...] = ()  # envelope ids
    reminded: tuple[str, ...] = ()  # recipient ids


def next_due(due: datetime, every_days: int, now: datetime) -> datetime:
    """The schedule's first step after ``now``, counting from ``due`` in steps of ``every_days``."""
    step = timedelta(days=every_days)
    missed = max(0, int((now - due) // step))
    return due + step * (missed + 1)


class Scheduler:
    def __init__(self, store: Store, parties: Parties, queue: NoticeQueue, clock: Clock,
                 changed: Callable[[], None]) -> None:
        self._store = store
        self._parties = parties
        self._queue = queue
        self._clock = clock
        self._changed = changed

    def run_once(self) -> Pass:
        now = ms(self._clock.now())
        expired = [e for e in self._due_expiries(now) if self._expire(e, now)]
        reminded = [r for env_id, r in self._due_reminders(now) if self._remind(env_id, r, now)]
        return Pass(tuple(expired), tuple(reminded))

    # -- expiry --------------------------------------------------------------------------------------------------
    def _due_expiries(self, now: datetime) -> list[str]:
        rows = self._store.query("SELECT id FROM envelopes WHERE state = 'sent' AND expires_at <= ? "
                                 "ORDER BY expires_at LIMIT ?", (text(now), BATCH))
        return [r["id"] for r in rows]

    def _expire(self, envelope_id: str, now: datetime) -> bool:
        with self._store.transaction():
            env = records.load(self._store, envelope_id)
            if env is None or env.state is not EnvelopeState.SENT or env.expires_at is None or env.expires_at > now:
                return False  # signed, declined or voided meanwhile
            state = envelope_move(env.state, "expire")
            expired = events.append(self._store, env.id, "expired", SERVER, now, {
                "expires_at": text(env.expires_at),
                "unsigned": [r.id for r in env.recipients if r.signs and not has_finished(env, r)]})
            for person_id in told(env, skip=None):
                self._queue.queue(env, self._parties.person(person_id), "expired", expired, now,
                                  params={"expires_at": text(env.expires_at)})
            records.stop_reminders(self._store, env.id)
            records.update_envelope(self._store, env, state=state, ended_at=env.expires_at)
        self._changed()
        log.info("envelope %s expired (expires_at %s)", envelope_id, text(env.expires_at))
        return True

    # -- reminders -----------------------------------------------------------------------------------------------
    def _due_reminders(self, now: datetime) -> list[tuple[str, str]]:
        rows = self._store.query("SELECT id, envelope_id FROM envelope_recipients WHERE next_reminder_at <= ? "
                                 "ORDER BY next_reminder_at LIMIT ?", (text(now), BATCH))
        return [(r["envelope_id"], r["id"]) for r in rows]

    def _remind(self, envelope_id: str, recipient_id: str, now: datetime) -> bool:
        with self._store.transaction():
            env = records.load(self._store, envelope_id)
            r = next((x for x in env.recipients if x.id == recipient_id), None) if env else None
            if env is None or r is None or r.next_reminder_at is None or r.next_reminder_at > now:
                return False  # moved on meanwhile
            current = as_of(env, now)
            if current.state is not EnvelopeState.SENT or not r.signs or has_finished(env, r) \
                    or r.state not in (RecipientState.NOTIFIED, RecipientState.VIEWED) \
                    or r.reminders_sent >= env.reminder_max or not env.reminder_every_days:
                records.update_recipient(self._store, r.id, next_reminder_at=None)
                return False
            envelope_move(current.state, "remind")
            number = r.reminders_sent + 1
            following = next_due(r.next_reminder_at, env.reminder_every_days, now) \
                if number < env.reminder_max else None
            records.update_recipient(self._store, r.id, reminders_sent=number, next_reminder_at=following)
            reminded = events.append(self._store, env.id, "reminded", SERVER, now, {
                "recipient_id": r.id, "person_id": r.person_id, "reminder": number, "of": env.reminder_max,
                "due_at": text(r.next_reminder_at), "next_reminder_at": text(following)})
            self._queue.queue(env, self._parties.person(r.person_id), "reminder", reminded, now,
                              params={"number": number, "expires_at": text(env.expires_at)})
            records.update_envelope(self._store, env)
        self._changed()
        log.info("envelope %s: reminder %d of %d to recipient %s", envelope_id, number, env.reminder_max, recipient_id)
        return True
