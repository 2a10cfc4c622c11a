"""The dispatcher: hands queued notices (:mod:`.notices`) to the server's notifier after their change committed.

One dispatcher per store (the thread :mod:`.background` runs in ``signet-server run``).  Each due notice is
rendered from its envelope and handed to the channel its address kind is routed to, with its own id as the
message id:

- **outbox** (a table of the same store): the outbox row and the notice's mark commit in one transaction, so an
  outbox notice is delivered exactly once, crash or not (and its id, the outbox row's key, could not be
  inserted twice anyway).
- **SMTP, webhook** (outside the store): the notice is claimed first (``sending_since``, committed), then
  handed over outside any transaction -- a slow relay holds no lock and fails no change -- then marked
  delivered with the time the hand-off began and the channel's reference.  The at-least-once window: a
  kill -9 after the relay or webhook took the notice and before the mark committed (one SQLite commit, a few
  milliseconds; or a hand-off still running when a stopping server gives up waiting for it; or the store
  refusing the mark).  The notice is then found claimed at the next pass or start, counted ``in_doubt`` and
  handed over once more with the same id (``X-Signet-Delivery``, ``X-Signet-Message-Id``, ``Message-ID``),
  by which a receiver drops it.  The dispatcher hands over one notice at a time, so one crash duplicates at
  most one notice.

A failed hand-off (the channel's own retries included: the webhook's back-off) is retried after
``retry.delay(attempts)`` (doubling up to a cap); after ``retry.max_attempts`` attempts, or at once for a notice
no channel can take (INVALID_ARGUMENT), it is ``failed`` and a ``notice_failed`` event says so.  Delivering a
recipient's first notice sets their ``notified_at`` (the moment the hand-off began, ms precision) and writes
the ``notified`` event.  A reminder whose reason is gone by its turn (the recipient signed, the envelope
ended) is ``cancelled`` instead of sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock
from ..errors import InvalidArgument, ServerError
from ..notify import OutboxChannel, Router
from ..notify.message import Address, Channel, Delivery, Message
from ..store import Store
from . import events, records
from .model import Envelope, EnvelopeState, RecipientState, as_of
from .notices import Notice, NoticeQueue, render
from .records import ms, text
from .routing import SERVER, has_finished

log = logging.getLogger(__name__)

BATCH = 50
MAX_BATCHES = 20  # per pass: a pass ends even if notices keep coming due


@dataclass(frozen=True)
class RetryRule:
    max_attempts: int = 8
    first_delay: float = 30.0  # seconds after the first failed attempt
    max_delay: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after failed attempt number ``attempts`` (1-based)."""
        return timedelta(seconds=min(self.first_delay * 2 ** (attempts - 1), self.max_delay))


class Dispatcher:
    def __init__(self, store: Store, channel: Channel, clock: Clock, queue: NoticeQueue, *, retry: RetryRule,
                 changed: Callable[[], None], stopping: Callable[[], bool] = lambda: False) -> None:
        self._store = store
        self._channel = channel
        self._clock = clock
        self._queue = queue
        self.retry = retry
        self._changed = changed  # rung after each commit (watchers see the events at once)
        self._stopping = stopping

    def run_once(self) -> int:
        """Hand every due notice over; returns how many were tried."""
        tried = 0
        for _ in range(MAX_BATCHES):
            batch = self._queue.due(self._clock.now(), BATCH)
            for n in batch:
                if self._stopping():
                    return tried
                self._deliver(n)
                tried += 1
            if len(batch) < BATCH:
                break
        return tried

    # -- one notice ----------------------------------------------------------------------------------------------
    def _target(self, to: Address) -> Channel:
        return self._channel.channel_for(to) if isinstance(self._channel, Router) else self._channel

    def _deliver(self, n: Notice) -> None:
        try:
            env = records.load(self._store, n.envelope_id)
            if env is None:  # envelopes are never deleted: a notice names one that exists
                raise ValueError(f"notice {n.id} names no envelope")
            stale = _stale_reminder(n, env, self._clock.now())
            if stale:
                self._finish(n, state="cancelled", error=stale)
                return
            subject, body = render(n.kind, env, n.params)
            message = Message(n.to, subject, body, topic=n.topic, id=n.id)
            target = self._target(n.to)
            delivery: Delivery | None = None
            if isinstance(target, OutboxChannel) and target.store is self._store:
                with self._store.transaction():  # hand-off and mark commit together: exactly once
                    if not self._claim(n, mark=False):
                        return
                    at = ms(self._clock.now())
                    self._delivered(n, target.send(message), at)
            else:
                if not self._claim(n, mark=True):
                    return
                at = ms(self._clock.now())
                delivery = target.send(message)  # outside any transaction: no lock held, no change failed
        except Exception as e:  # noqa: BLE001 - any failure of one notice is recorded; the dispatcher goes on
            self._failed(n, e)
            self._changed()
            return
        if delivery is not None:
            try:
                with self._store.transaction():
                    self._delivered(n, delivery, at)
            except Exception:  # the claim stays: the notice is handed over again, counted in doubt
                log.exception("envelope %s: notice %s was handed to %s but could not be marked; it will be handed "
                              "over again (same id)", n.envelope_id, n.id, delivery.channel)
        self._changed()

    def _claim(self, n: Notice, *, mark: bool) -> bool:
        """Take ``n`` if it is still pending as it was read; ``mark``: record (committed) that a hand-off begins."""
        with self._store.transaction():
            row = self._store.query_one("SELECT state, sending_since FROM envelope_notices WHERE id = ?", (n.id,))
            if row is None or row["state"] != "pending" or row["sending_since"] != text(n.sending_since):
                return False  # another dispatcher took it meanwhile
            doubt = 1 if n.sending_since is not None else 0
            if doubt:
                log.warning("envelope %s: notice %s was being handed to a channel when the server stopped; handing "
                            "it over again (receivers drop a duplicate by its id)", n.envelope_id, n.id)
            if mark or doubt:
                self._store.execute("UPDATE envelope_notices SET sending_since = ?, in_doubt = in_doubt + ? "
                                    "WHERE id = ?", (text(self._clock.now()) if mark else None, doubt, n.id))
        return True

    def _delivered(self, n: Notice, delivery: Delivery, at: datetime) -> None:
        self._store.execute(
            "UPDATE envelope_notices SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, channel = ?, "
            "message_ref = ?, sending_since = NULL, next_attempt_at = NULL, last_error = '' WHERE id = ?",
            (text(at), delivery.channel, delivery.reference, n.id))
        log.info("envelope %s: %s notice %s to person %s handed to %s", n.envelope_id, n.kind, n.id, n.person_id,
                 delivery.channel)
        if n.recipient_id is None:
            return
        row = self._store.query_one("SELECT notified_at FROM envelope_recipients WHERE id = ?", (n.recipient_id,))
        if row is None or row["notified_at"] is not None:
            return  # notified by an earlier copy
        records.update_recipient(self._store, n.recipient_id, notified_at=at)
        events.append(self._store, n.envelope_id, "notified", SERVER, at, {
            "recipient_id": n.recipient_id, "person_id": n.person_id, "channel": delivery.channel,
            "message_id": delivery.message_id, "notified_at": text(at)})
        records.touch(self._store, n.envelope_id)

    def _failed(self, n: Notice, error: Exception) -> None:
        reason = error.reason if isinstance(error, ServerError) else "INTERNAL"
        if not isinstance(error, ServerError):
            log.error("envelope %s: notice %s failed unexpectedly (%s)", n.envelope_id, n.id, type(error).__name__)
        attempts = n.attempts + 1
        if isinstance(error, InvalidArgument) or attempts >= self.retry.max_attempts:
            self._finish(n, state="failed", error=reason, attempts=attempts)
            return
        when = self._clock.now() + self.retry.delay(attempts)
        self._store.execute("UPDATE envelope_notices SET attempts = ?, next_attempt_at = ?, sending_since = NULL, "
                            "last_error = ? WHERE id = ? AND state = 'pending'", (attempts, text(when), reason, n.id))
        log.warning("envelope %s: notice %s not handed over (%s, attempt %d of %d); next attempt at %s",
                    n.envelope_id, n.id, reason, attempts, self.retry.max_attempts, text(when))

    def _finish(self, n: Notice, *, state: str, error: str, attempts: int | None = None) -> None:
        now = ms(self._clock.now())
        with self._store.transaction():
            if self._store.execute(
                    "UPDATE envelope_notices SET state = ?, attempts = ?, next_attempt_at = NULL, "
                    "sending_since = NULL, last_error = ? WHERE id = ? AND state = 'pending'",
                    (state, n.attempts if attempts is None else attempts, error, n.id)) != 1:
                return
            if state == "failed":
                events.append(self._store, n.envelope_id, "notice_failed", SERVER, now, {
                    "notice_id": n.id, "kind": n.kind, "person_id": n.person_id, "recipient_id": n.recipient_id,
                    "announces": n.event_id, "attempts": attempts, "reason": error})
        if state == "failed":
            log.error("envelope %s: notice %s (%s) to person %s failed for good (%s) after %s attempt(s); "
                      "`signet-admin notice replay %d` sends it again", n.envelope_id, n.id, n.kind, n.person_id,
                      error, attempts, n.event_id)
        else:
            log.info("envelope %s: reminder %s cancelled (%s)", n.envelope_id, n.id, error)
        self._changed()


def _stale_reminder(n: Notice, env: Envelope, now: datetime) -> str:
    """Why a reminder is no longer wanted ("" when it is): the envelope ended, or the recipient is done."""
    if n.kind != "reminder":
        return ""
    env = as_of(env, now)
    if env.state is not EnvelopeState.SENT:
        return f"ENVELOPE_{env.state.name}"
    r = next((x for x in env.recipients if x.person_id == n.person_id), None)
    if r is None or r.state not in (RecipientState.NOTIFIED, RecipientState.VIEWED) or has_finished(env, r):
        return f"RECIPIENT_{r.state.name if r else 'GONE'}"
    return ""
