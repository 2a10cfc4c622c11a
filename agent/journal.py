"""The operation journal: one row per operation in SQLite (sqlite-utils, WAL, synchronous=FULL).

Rows hold time, caller, operation, token serial, key id, document SHA-256, format, outcome and the exact
digest the token signed -- never document contents, never PINs.  Refused requests get a row too, with the
reason as the outcome.

Group commit, leader/follower: whoever finds no commit in progress becomes the leader and commits every row
pending at that moment in one transaction (one fsync), then again for the rows that arrived meanwhile, until
none is left; the others wait for their rows' commit.  A caller that waits (``record``, unary signing) leads in
its own thread, so a lone call pays one fsync and no thread hand-off; a caller that does not wait (streams and
documents overlap the fsync with other work) hands its rows to a background writer that leads for it.  The
signing path withholds a signature whose row could not be written.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
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
    """Rows submitted together; ``wait`` returns once they are on disk (raises JournalError if not).

    A caller waiting on its ticket may be handed the leadership of the next commit (``promoted``): it then
    commits the pending rows, its own among them, in its own thread."""

    def __init__(self, rows: list[Row], journal: Journal | None = None) -> None:
        self.rows = rows
        self.journal = journal
        self.wake = threading.Event()
        self.finished = False
        self.promoted = False
        self.error: BaseException | None = None

    def wait(self) -> None:
        while True:
            self.wake.wait()
            if self.finished:
                break
            self.wake.clear()
            if self.promoted and self.journal is not None:
                self.promoted = False
                self.journal.lead()
        if self.error is not None:
            raise JournalError("the journal could not record the operation; its result is withheld") \
                from self.error

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.finished = True
        self.wake.set()


class Journal:
    """Append-only journal with group commit (see the module docstring)."""

    def __init__(self, path: Path, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.path = path
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        fault = os.environ.get(FAULT_FILE_ENV)
        self._fault = Path(fault) if fault else None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self._db.table("journal").create(
            {"id": int, "time": str, "caller": str, "operation": str, "token_serial": str, "key_id": str,
             "document_sha256": str, "format": str, "outcome": str, "signed_digest": str},
            pk="id", if_not_exists=True,
        )
        if "signed_digest" not in self._db.table("journal").columns_dict:  # journals older than the column
            self._db.execute("ALTER TABLE journal ADD COLUMN signed_digest TEXT NOT NULL DEFAULT ''")
        self._lock = threading.Lock()
        self._pending: list[Ticket] = []
        self._leading = False  # a commit loop is running (in some caller's thread or the writer's)
        self._handed = threading.Condition(self._lock)  # rows for the background writer
        self._idle = threading.Condition(self._lock)  # no commit loop running
        self._closing = False
        self.commits = 0  # transactions committed (one fsync each): fewer than records when calls overlap
        self._thread = threading.Thread(target=self._writer, name="journal-writer", daemon=True)
        self._thread.start()

    def _open(self) -> sqlite_utils.Database:
        # one connection, used by one leader at a time (never concurrently), from whichever thread leads
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _now(self) -> str:
        return self._clock().isoformat(timespec="microseconds")

    def _submit(self, rows: list[Row], wait: bool) -> Ticket:
        ticket = Ticket(rows, self if wait else None)
        with self._lock:
            if self._closing:
                raise JournalError("the journal is closed; the operation was not recorded")
            self._pending.append(ticket)
            lead = wait and not self._leading
            if lead:
                self._leading = True
            elif not wait:
                self._handed.notify()
        if lead:
            self.lead()
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

    def _write(self, rows: list[Row]) -> None:
        if self._fault is not None and self._fault.exists():
            raise sqlite3.OperationalError("database or disk is full (test fault hook)")
        conn = self._db.conn
        conn.execute("BEGIN")
        full = len(rows) - len(rows) % BLOCK
        for i in range(0, full, BLOCK):
            conn.execute(_INSERT_BLOCK, [v for r in rows[i:i + BLOCK] for v in r])
        if full < len(rows):
            conn.executemany(_INSERT_ONE, rows[full:])
        conn.execute("COMMIT")
        self.commits += 1

    def lead(self) -> None:
        """Commit every row pending now in one transaction, then pass the leadership on: to a caller waiting for
        rows that arrived meanwhile, else to the background writer; or stop leading when nothing is pending."""
        with self._lock:
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        if batch:
            try:
                self._write([r for t in batch for r in t.rows] if len(batch) > 1 else batch[0].rows)
            except Exception as e:  # noqa: BLE001 - disk full, I/O error: every waiter learns it
                log.error("journal write failed: %s", type(e).__name__)
                error = e
                try:
                    self._db.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        for t in batch:
            t.finish(error)
        with self._lock:
            waiting = next((t for t in self._pending if t.journal is not None), None)
            if waiting is not None:  # the leadership passes to a caller that waits anyway
                waiting.promoted = True
                waiting.wake.set()
                return
            self._leading = False
            if self._pending:
                self._handed.notify()  # only rows nobody waits for: the background writer takes them
            self._idle.notify_all()  # close() waits for no leader, whatever is left pending

    def _writer(self) -> None:
        """Leads for callers that do not wait; exits once closed and drained."""
        while True:
            with self._lock:
                # a running leader takes rows handed meanwhile: it loops until nothing is pending
                while not (self._pending and not self._leading) and not self._closing:
                    self._handed.wait()
                if self._leading or not self._pending:
                    if self._closing:
                        return
                    continue
                self._leading = True
            self.lead()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._handed.notify()
        self._thread.join(timeout=10)
        with self._lock:
            while self._leading:  # a caller's commit loop still running: let it finish
                self._idle.wait()
            # rows nobody waited for, handed after the writer saw the close: written here, not lost
            self._leading = bool(self._pending)
        if self._leading:
            self.lead()
        self._db.conn.close()


def read(path: Path) -> list[dict[str, object]]:
    """Every journal row, oldest first (for tests and `signet` administration)."""
    db = sqlite_utils.Database(str(path))
    try:
        return list(db["journal"].rows_where(order_by="id"))
    finally:
        db.conn.close()
