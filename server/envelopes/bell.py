"""A bell rung after every committed envelope change, so that the dispatcher and the event watchers act at once
instead of waiting for their next poll.

It only shortens the wait: every waiter also polls the store at ``[envelopes] scheduler_seconds``, which is how
it sees what another process (``signet-admin notice replay``) wrote.  Ringing happens after the commit, never
inside a transaction: a waiter woken early would look, find nothing yet and sleep through the change.
Closing the bell (the server stopping) wakes every waiter for good.
"""

from __future__ import annotations

import threading


class Bell:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rings = 0
        self._closed = False

    @property
    def rings(self) -> int:
        with self._cond:
            return self._rings

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def ring(self) -> None:
        with self._cond:
            self._rings += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until a ring after ``seen`` (the count a waiter last saw), the bell closes, or ``timeout``
        seconds; returns the count now."""
        with self._cond:
            self._cond.wait_for(lambda: self._rings != seen or self._closed, timeout)
            return self._rings

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """For a service started again after a stop (tests)."""
        with self._cond:
            self._closed = False
