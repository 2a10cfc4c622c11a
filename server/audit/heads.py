"""Signed tree heads of the audit log, made by the running server: after each seal, and at most every
``interval`` while the log grows (a background pass), so every event is covered by a signed head soon after it
happened; evidence exports sign their own."""

from __future__ import annotations

import logging
from datetime import timedelta

from signet.auditformat import parse_time

from ..clock import Clock
from ..store import Store
from .log import AuditLog, HeadSigner, TreeHead

log = logging.getLogger(__name__)


class HeadSigning:
    def __init__(self, store: Store, signer: HeadSigner, clock: Clock,
                 interval: timedelta = timedelta(minutes=10)) -> None:
        self._log = AuditLog(store, migrate=False)
        self._signer = signer
        self._clock = clock
        self._interval = interval

    def sign_now(self) -> TreeHead:
        """A head over every leaf committed now (the newest one when the log has not grown)."""
        return self._log.sign_head(self._signer, self._clock.now())

    def run_once(self) -> TreeHead | None:
        """Sign a head when the log has grown and the newest head is older than the interval."""
        head = self._log.head()
        if head is not None and head.tree_size >= self._log.size():
            return None
        if head is not None and self._clock.now() - parse_time(head.timestamp) < self._interval:
            return None
        signed = self.sign_now()
        log.info("audit log: tree head signed at size %d", signed.tree_size)
        return signed
