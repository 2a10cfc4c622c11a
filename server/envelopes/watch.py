"""WatchEnvelopeEvents: the event log followed live, for integrators.

A watch covers one envelope or every envelope the caller may see.  It first replays the events after
``after_event_id`` that existed when it began, then sends one *caught up* item, then follows new events as
they are written (woken by the :class:`~.bell.Bell` after each commit in this process, and polling the store
every ``poll_seconds`` for what other processes write).  Event ids become visible in id order
(:mod:`.events`), so following "id > the last one considered" never skips an event: a client that reconnects
with the last id it received gets exactly the events after it, without a gap or a repeat.

Each event is authorised as GetEnvelope would be for its envelope when the watch reads it (:mod:`.access`),
after an SQL filter that keeps the log scan to the caller's envelopes.  Visibility only ever grows (a draft
becomes visible to its recipients when it is sent), so a recipient following live does not see the draft's
``created`` event, which a later replay from before it shows.

A watch holds one gRPC worker thread for its whole life: at most ``max_watches`` run at once, more are refused
(RESOURCE_EXHAUSTED ``BUSY``).  It ends when the caller cancels, or with UNAVAILABLE ``SERVER_STOPPING`` when
the server stops (the bell closes): the client reconnects to another instance or later, from its last id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..clock import Clock
from ..errors import NotFound, RateLimited, Unavailable
from ..identity import Principal
from ..store import Store
from . import events, records
from .access import access
from .bell import Bell
from .model import Event, as_of

BATCH = 200


@dataclass(frozen=True)
class WatchItem:
    event: Event | None  # None on the caught-up item
    last_event_id: int  # every event up to this id has been considered: resume after it
    caught_up: bool = False


def _scope(p: Principal, envelope_id: str) -> tuple[str, list[object]]:
    """An SQL condition on envelope ``e`` that holds for (at least) the envelopes ``p`` may see."""
    params: list[object]
    if p.is_operator:
        where, params = "e.org_id = ?", [p.org_id]
    elif not p.is_person:  # a station by itself: nothing
        where, params = "1 = 0", []
    else:
        where = ("(e.org_id = ? AND e.sender_person_id = ?) OR (e.state <> 'draft' AND EXISTS (SELECT 1 FROM "
                 "envelope_recipients r WHERE r.envelope_id = e.id AND r.person_id = ? AND r.org_id = ?))")
        params = [p.org_id, p.subject, p.subject, p.org_id]
    if envelope_id:
        return f"e.id = ? AND ({where})", [envelope_id, *params]
    return where, params


class Watches:
    def __init__(self, store: Store, bell: Bell, clock: Clock, poll_seconds: float, max_watches: int) -> None:
        self._store = store
        self._bell = bell
        self._clock = clock
        self._poll = poll_seconds
        self._slots = threading.BoundedSemaphore(max_watches)

    def watch(self, p: Principal, envelope_id: str, after_event_id: int,
              cancelled: Callable[[], bool]) -> Iterator[WatchItem]:
        """The items of one watch (a generator: the checks run at the first ``next``)."""
        if envelope_id:
            env = records.load(self._store, envelope_id) if 0 < len(envelope_id) <= 64 else None
            access(p, env, envelope_id)  # NotFound, exactly like GetEnvelope
        if self._bell.closed:
            raise self._stopping(after_event_id)
        if not self._slots.acquire(blocking=False):
            raise RateLimited("too many event watches are open on this server; try again shortly",
                              retry_after=self._poll, reason="BUSY")
        try:
            yield from self._follow(p, envelope_id, max(0, after_event_id), cancelled)
        finally:
            self._slots.release()

    @staticmethod
    def _stopping(cursor: int) -> Unavailable:
        return Unavailable(f"the server is stopping: reconnect and resume after event {cursor}",
                           reason="SERVER_STOPPING")

    def _follow(self, p: Principal, envelope_id: str, cursor: int,
                cancelled: Callable[[], bool]) -> Iterator[WatchItem]:
        scope, params = _scope(p, envelope_id)
        seen_visible: set[str] = set()
        caught_up = False
        while True:
            rings = self._bell.rings  # before reading: a change committed after this wakes the wait below
            if cancelled():
                return
            if self._bell.closed:
                raise self._stopping(cursor)
            head = events.head(self._store)
            while cursor < head:
                batch = events.window(self._store, cursor, head, scope, params, BATCH)
                for e in self._visible(p, batch, seen_visible):
                    yield WatchItem(e, e.id)
                cursor = batch[-1].id if len(batch) == BATCH else head
            if not caught_up:
                caught_up = True
                yield WatchItem(None, cursor, caught_up=True)
            self._bell.wait(rings, self._poll)

    def _visible(self, p: Principal, batch: Sequence[Event], seen_visible: set[str]) -> list[Event]:
        """The events of ``batch`` whose envelope ``p`` may see now (remembered once seen: it stays visible)."""
        unknown = list(dict.fromkeys(e.envelope_id for e in batch if e.envelope_id not in seen_visible))
        if unknown:
            marks = ", ".join("?" for _ in unknown)
            rows = self._store.query(f"SELECT * FROM envelopes WHERE id IN ({marks})", unknown)  # noqa: S608
            now = self._clock.now()
            for env in records.assemble(self._store, rows):
                try:
                    access(p, as_of(env, now), env.id)
                except NotFound:
                    continue
                seen_visible.add(env.id)
        return [e for e in batch if e.envelope_id in seen_visible]
