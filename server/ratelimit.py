"""Per-client rate limits in memory: at most ``limit`` events per ``window`` seconds per key (a client address).

A sliding window of event times per key, pruned as it is used; keys idle for a window are forgotten, so memory
stays bounded by the clients seen within one window.  Used by the enrollment listener (per client address) and
the PKI HTTP listener.  Per process: replicas each keep their own (documented).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import RateLimited


class SlidingWindow:
    def __init__(self, limit: int, window: float = 60.0, *, reason: str = "RATE_LIMITED",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs a positive count and window")
        self.limit = limit
        self.window = window
        self.reason = reason
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._pruned = clock()

    def hit(self, key: str) -> None:
        """Count one event for ``key``; :class:`RateLimited` (with retry_after) when over the limit."""
        now = self._clock()
        with self._lock:
            if now - self._pruned > self.window:
                self._prune(now)
            times = self._events.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                wait = times[0] + self.window - now
                raise RateLimited(f"too many requests from this client; retry in {max(1, round(wait))} s",
                                  retry_after=wait, reason=self.reason)
            times.append(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._events.items() if not t or t[-1] <= now - self.window]:
            del self._events[key]
        self._pruned = now


def client_host(peer: str) -> str:
    """The address part of a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:...")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:rest.index("]")] if "]" in rest else rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer
