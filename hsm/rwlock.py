"""A readers-writer lock: many PKCS#11 calls at once, or one module reinitialisation.

``C_Finalize`` invalidates every session of every thread, so :meth:`hsm.module.Module.reinitialize`
must wait until no call is in flight, and no call may start while it runs.  Writers are preferred:
a reinitialisation waits only for the calls already in flight, not for a stream of new ones.
Not reentrant: a thread holding the lock shared must not ask for it again (a waiting writer would
block it against itself).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    """Many readers (PKCS#11 calls) or one writer (reinitialize)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # taken directly (a C-level context manager) on the hot path
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self.entries = 0  # shared() entries ever: lets a watcher tell "idle since" cheaply

    @property
    def readers(self) -> int:
        return self._readers

    def acquire_shared(self) -> None:
        """Enter as a reader; every call must be paired with :meth:`release_shared`."""
        with self._lock:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
            self.entries += 1

    def release_shared(self) -> None:
        with self._lock:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                # only a writer waits for readers; readers wait only for writers
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
