"""The operation journal: one row per operation in SQLite (sqlite-utils, WAL, synchronous=FULL).

Rows hold time, caller, operation, token serial, key id, document SHA-256, format, outcome and the exact
digest the token signed -- never document contents, never PINs.  Refused requests get a row too, with the
reason as the outcome.  One writer thread
owns the connection and commits whatever rows are pending in one transaction
(group commit), so thousands of signatures per second cost a few fsyncs;
``record`` waits until its rows are durable, and the signing path withholds a
signature whose row could not be written.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from .errors import JournalError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    operation: str  # sign_digest, sign_pdf, sign_detached, unlock, lock, generate_key, create_csr, ...
    caller: str
    token_serial: str = ""
    key_id: str = ""
    document_sha256: str = ""
    format: str = ""  # digest, pades-b-b, pades-b-t, cades-detached, ...
    outcome: str = "ok"  # "ok" or an error reason such as PIN_INCORRECT
    signed_digest: str = ""  # hex of the digest the token signed (what the signature commits to)


COLUMNS = ("time", "caller", "operation", "token_serial", "key_id", "document_sha256", "format", "outcome",
           "signed_digest")
Row = tuple[str, str, str, str, str, str, str, str, str]  # in COLUMNS order
FAULT_FILE_ENV = "SIGNET_TEST_JOURNAL_FAULT"  # test hook: while this file exists, journal writes fail (disk full)
BLOCK = 64
_ONE = f"({', '.join('?' * len(COLUMNS))})"
_INSERT_ONE = f"INSERT INTO journal({', '.join(COLUMNS)}) VALUES {_ONE}"  # noqa: S608 - constant column names
# 64 rows per statement: one sqlite3_step (and one GIL release) instead of 64 -- ~2 us less per row
_INSERT_BLOCK = f"INSERT INTO journal({', '.join(COLUMNS)}) VALUES {', '.join([_ONE] * BLOCK)}"  # noqa: S608


class Ticket:
    """Rows handed to the writer; ``wait`` returns once they are on disk (raises JournalError if not)."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise JournalError("the journal could not record the operation; its result is withheld") \
                from self.error


class Journal:
    """Append-only journal with a group-committing writer thread."""

    def __init__(self, path: Path, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.path = path
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        fault = os.environ.get(FAULT_FILE_ENV)
        self._fault = Path(fault) if fault else None
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        db.table("journal").create(
            {"id": int, "time": str, "caller": str, "operation": str, "token_serial": str, "key_id": str,
             "document_sha256": str, "format": str, "outcome": str, "signed_digest": str},
            pk="id", if_not_exists=True,
        )
        if "signed_digest" not in db.table("journal").columns_dict:  # journals written before the column existed
            db.execute("ALTER TABLE journal ADD COLUMN signed_digest TEXT NOT NULL DEFAULT ''")
        db.conn.close()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def _open(self) -> sqlite_utils.Database:
        conn = sqlite3.connect(str(self.path), isolation_level=None)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _now(self) -> str:
        return self._clock().isoformat(timespec="microseconds")

    def _submit(self, rows: list[Row], wait: bool) -> Ticket:
        ticket = Ticket(rows)
        self._queue.put(ticket)
        if wait:
            ticket.wait()
        return ticket

    def record(self, entries: Sequence[Entry], *, wait: bool = True) -> Ticket:
        """Append ``entries``; with ``wait`` return only when they are on disk (raises JournalError)."""
        now = self._now()
        return self._submit([(now, e.caller, e.operation, e.token_serial, e.key_id, e.document_sha256, e.format,
                              e.outcome, e.signed_digest) for e in entries], wait)  # not asdict(): 80 us per row

    def record_digests(self, operation: str, caller: str, token_serial: str, key_id: str, fmt: str,
                       digests_hex: Sequence[str], *, wait: bool = True) -> Ticket:
        """One row per signed digest (a batch), all else equal: no Entry object per row."""
        now = self._now()
        return self._submit([(now, caller, operation, token_serial, key_id, d, fmt, "ok", d) for d in digests_hex],
                            wait)

    def refusal(self, operation: str, caller: str, reason: str, *, token_serial: str = "", key_id: str = "",
                document_sha256: str = "", fmt: str = "") -> None:
        """Record a refused request (never raises: the refusal itself is what the caller must see)."""
        try:
            self.record([Entry(operation, caller, token_serial, key_id, document_sha256, fmt, reason)])
        except Exception:  # a failure row must never mask the real error
            log.exception("journal row for a refused %s not recorded", operation)

    def _take(self, first: Ticket) -> tuple[list[Ticket], bool]:
        """``first`` and every batch queued behind it (one transaction for all); True when close() came too."""
        batches = [first]
        while True:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return batches, False
            if nxt is None:
                return batches, True
            batches.append(nxt)

    def _write(self, db: sqlite_utils.Database, rows: list[Row]) -> None:
        if self._fault is not None and self._fault.exists():
            raise sqlite3.OperationalError("database or disk is full (test fault hook)")
        db.conn.execute("BEGIN")
        full = len(rows) - len(rows) % BLOCK
        for i in range(0, full, BLOCK):
            db.conn.execute(_INSERT_BLOCK, [v for r in rows[i:i + BLOCK] for v in r])
        if full < len(rows):
            db.conn.executemany(_INSERT_ONE, rows[full:])
        db.conn.execute("COMMIT")

    def _run(self) -> None:
        db = self._open()
        while True:
            first = self._queue.get()
            if first is None:
                break
            batches, stop = self._take(first)
            try:
                self._write(db, [r for b in batches for r in b.rows] if len(batches) > 1 else first.rows)
            except Exception as e:  # noqa: BLE001 - disk full, I/O error: every waiter learns it
                log.error("journal write failed: %s", type(e).__name__)
                try:
                    db.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                for b in batches:
                    b.error = e
            for b in batches:
                b.done.set()
            if stop:
                break
        db.conn.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


def read(path: Path) -> list[dict[str, object]]:
    """Every journal row, oldest first (for tests and `signet` administration)."""
    db = sqlite_utils.Database(str(path))
    try:
        return list(db["journal"].rows_where(order_by="id"))
    finally:
        db.conn.close()
