"""Our own wrong-PIN counter per token serial, persisted across restarts.

SoftHSM never locks a PIN (it only reports "count low"), and a real card that
does lock should never get its last try from us by accident: we count
consecutive failures ourselves and stop before the token's own limit.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from signet.durable import write_atomic

from .errors import PinLocked

DEFAULT_MAX_FAILURES = 5


class PinGuard:
    """Counts consecutive wrong PINs per token serial in a small JSON file."""

    def __init__(self, path: str | os.PathLike[str] | None, max_failures: int = DEFAULT_MAX_FAILURES) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.path = Path(path) if path else None
        self.max_failures = max_failures
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self._failures = {str(k): int(v) for k, v in data.get("failures", {}).items()}
            except (ValueError, OSError, AttributeError):
                # an unreadable counter must not unlock anything: treat every token as locked
                self._failures = {"*": max_failures}

    def failures(self, serial: str) -> int:
        with self._lock:
            return max(self._failures.get(serial, 0), self._failures.get("*", 0))

    def remaining(self, serial: str) -> int:
        return max(0, self.max_failures - self.failures(serial))

    def check(self, serial: str, label: str = "") -> None:
        """Raise PinLocked when no try is left for this token."""
        if self.remaining(serial) <= 0:
            raise PinLocked(
                f"token {label or serial} (serial {serial}) is locked after "
                f"{self.max_failures} wrong PINs; an administrator must reset it"
            )

    def record_failure(self, serial: str) -> int:
        """Count one wrong PIN; returns tries remaining."""
        with self._lock:
            self._failures[serial] = self._failures.get(serial, 0) + 1
            self._save()
            return max(0, self.max_failures - self._failures[serial])

    def record_success(self, serial: str) -> None:
        with self._lock:
            if self._failures.pop(serial, None) is not None:
                self._save()

    def reset(self, serial: str) -> None:
        """Administrative unlock (after the PIN was reset on the token)."""
        self.record_success(serial)

    def _save(self) -> None:
        if not self.path:
            return
        write_atomic(self.path, json.dumps({"failures": self._failures}).encode(), 0o600)
