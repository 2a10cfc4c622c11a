"""Retention in the running server: crypto-shredding when an organisation's retention period ends, with a
tombstone in the audit log; and the audit trail of the operator's archive decisions.

:class:`RetentionJob` runs as a background pass (at most once per ``interval``): :meth:`Archive.shred_expired`
destroys the wrapped data keys of the objects whose retention ended and that are under no legal hold, and for
each one the audit log gets an ``archive.shredded`` leaf (organisation, object id, size, when it was archived,
the retention, when it was shredded; subject: the envelope it belonged to when known) in the same transaction.
The object cannot be read again; the tombstone stays.  Retention and legal hold are set per organisation by
``signet-admin archive retention ORG`` / ``archive hold ORG`` (``archive.policy_set`` leaves) and the archive
key-encryption key rotated by ``signet-admin archive rotate-kek LABEL`` (``archive.kek_rotated``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .. import audit
from ..clock import Clock, to_text
from ..store import Store
from .vault import Archive, Shredded

log = logging.getLogger(__name__)

ARCHIVE_SUBJECT = "archive"  # the audit subject of archive-wide events


def tombstone(store: Store, s: Shredded, now: datetime) -> None:
    """The audit leaf of one shredded object (inside the shredding transaction)."""
    row = store.query_one("SELECT envelope_id, kind FROM sealed_objects WHERE sha256 = ? AND org = ?",
                          (s.sha256, s.org)) if _has_sealed(store) else None
    audit.append(store, "archive.shredded", str(row["envelope_id"]) if row else ARCHIVE_SUBJECT, {
        "org": s.org, "object": s.sha256, "size": s.size, "kind": str(row["kind"]) if row else "",
        "archived_at": to_text(s.created_at), "retention_days": s.retention_days,
        "shredded_at": to_text(s.shredded_at)}, now)


def _has_sealed(store: Store) -> bool:
    return store.query_one("SELECT version FROM schema_versions WHERE component = 'seal'") is not None


class RetentionJob:
    def __init__(self, archive: Archive, store: Store, clock: Clock, interval: timedelta = timedelta(hours=1)) -> None:
        self._archive = archive
        self._store = store
        self._clock = clock
        self._interval = interval
        self._last: datetime | None = None

    def run_once(self) -> int:
        """Shred what is due (at most once per interval); returns how many objects were shredded."""
        now = self._clock.now()
        if self._last is not None and now - self._last < self._interval:
            return 0
        self._last = now
        shredded = self._archive.shred_expired(now, lambda s: tombstone(self._store, s, now))
        for s in shredded:
            log.info("archive: object %s of %s crypto-shredded (retention %d days ended)", s.sha256, s.org,
                     s.retention_days)
        return len(shredded)
