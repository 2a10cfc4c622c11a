"""The envelope service's background threads in ``signet-server run``: the scheduler and the notice dispatcher.

With several replicas on one PostgreSQL store, only the process holding the store's leadership
(:meth:`server.store.Store.try_lead`) runs a pass; the others check again at every interval and take over when
the leader's connection ends (its process died).

Each is a loop that runs one pass, then waits ``poll_seconds`` -- or less: the dispatcher is also woken by the
:class:`~.bell.Bell` rung after every committed change, so a notice goes out as soon as its change commits.
Two threads rather than one, so that a slow relay (an SMTP timeout, a webhook's retries) never delays an
expiry.  A pass that fails (the store busy, a bug) is logged and the loop goes on.  :meth:`Background.stop`
(SIGTERM) ends the loops after their current pass; a hand-off still running after ``timeout`` seconds is left
to die with the process, which the dispatcher's ``sending_since`` mark makes safe (:mod:`.dispatch`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bell import Bell

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """How the background work runs (``[envelopes]`` of the configuration)."""

    poll_seconds: float = 5.0  # scheduler pass and store poll interval (dispatcher, watchers)
    notice_max_attempts: int = 8
    notice_retry_seconds: float = 30.0  # first wait after a failed hand-off; doubles each time ...
    notice_retry_max_seconds: float = 3600.0  # ... up to this
    max_watches: int = 4  # WatchEnvelopeEvents streams at once (each holds a gRPC worker thread)


class _Loop:
    def __init__(self, name: str, work: Callable[[], Any], interval: float, stop: threading.Event,
                 bell: Bell | None, lead: Callable[[], bool]) -> None:
        self.name = name
        self._work = work
        self._lead = lead
        self._interval = interval
        self._stop = stop
        self._bell = bell
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        seen = self._bell.rings if self._bell else 0
        while not self._stop.is_set():
            try:
                if self._lead():  # another replica may run the background work: then this one stands by
                    self._work()
            except Exception:  # the loop outlives one failed pass; the next one retries
                log.exception("%s: pass failed", self.name)
            if self._bell is not None:
                seen = self._bell.wait(seen, self._interval)
            else:
                self._stop.wait(self._interval)


class Background:
    """``loops``: (thread name, one pass, woken by the bell?)."""

    def __init__(self, loops: list[tuple[str, Callable[[], Any], bool]], interval: float, bell: Bell,
                 lead: Callable[[], bool] = lambda: True) -> None:
        self._stop = threading.Event()
        self._bell = bell
        self._loops = [_Loop(name, work, interval, self._stop, bell if rung else None, lead)
                       for name, work, rung in loops]

    def start(self) -> None:
        for loop in self._loops:
            loop.thread.start()
        log.info("envelope background started: %s", ", ".join(loop.name for loop in self._loops))

    def stop(self, timeout: float) -> None:
        """End the loops (closing the bell wakes them, and every watcher) and wait up to ``timeout`` seconds."""
        self._stop.set()
        self._bell.close()
        for loop in self._loops:
            loop.thread.join(timeout)
            if loop.thread.is_alive():
                log.warning("%s: still in a pass after %.0f s; leaving it (a notice in hand-off is delivered again "
                            "at the next start)", loop.name, timeout)
