"""The operation journal: one row per operation in SQLite (sqlite-utils, WAL, synchronous=FULL).

Rows hold time, caller, operation, token serial, key id, document SHA-256,
format and outcome -- never document contents, never PINs.  One writer thread
owns the connection and commits whatever rows are pending in one transaction
(group commit), so thousands of signatures per second cost a few fsyncs;
``record`` waits until its rows are durable, and the signing path withholds a
signature whose row could not be written.
"""

from __future__ import annotations

import datetime as dt
import logging
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


COLUMNS = ("time", "caller", "operation", "token_serial", "key_id", "document_sha256", "format", "outcome")
Row = tuple[str, str, str, str, str, str, str, str]  # in COLUMNS order
BLOCK = 64


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
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        db.table("journal").create(
            {"id": int, "time": str, "caller": str, "operation": str, "token_serial": str, "key_id": str,
             "document_sha256": str, "format": str, "outcome": str},
            pk="id", if_not_exists=True,
        )
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
                              e.outcome) for e in entries], wait)  # not asdict(): 80 us per row

    def record_documents(self, operation: str, caller: str, token_serial: str, key_id: str, fmt: str,
                         document_sha256s: Sequence[str], *, outcome: str = "ok", wait: bool = True) -> Ticket:
        """One row per document hash, all else equal (a batch of digests): no Entry object per row."""
        head = (self._now(), caller, operation, token_serial, key_id)
        return self._submit([(*head, h, fmt, outcome) for h in document_sha256s], wait)  # type: ignore[misc]

    def _run(self) -> None:
        db = self._open()
        one = f"({', '.join('?' * len(COLUMNS))})"
        sql = f"INSERT INTO journal({', '.join(COLUMNS)}) VALUES {one}"
        # 64 rows per statement: one sqlite3_step (and one GIL release) instead of 64 -- ~2 us less per row
        sql_block = f"INSERT INTO journal({', '.join(COLUMNS)}) VALUES {', '.join([one] * BLOCK)}"
        while True:
            first = self._queue.get()
            if first is None:
                break
            batches = [first]
            stop = False
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batches.append(nxt)
            try:
                db.conn.execute("BEGIN")
                rows = [r for b in batches for r in b.rows] if len(batches) > 1 else first.rows
                full = len(rows) - len(rows) % BLOCK
                for i in range(0, full, BLOCK):
                    db.conn.execute(sql_block, [v for r in rows[i:i + BLOCK] for v in r])
                if full < len(rows):
                    db.conn.executemany(sql, rows[full:])
                db.conn.execute("COMMIT")
            except Exception as e:  # disk full, I/O error: every waiter learns it
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
