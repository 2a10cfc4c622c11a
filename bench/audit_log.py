"""Durable audit-log appends per second next to a bare SQLite insert of the same row, same run, same disk.

* ``raw insert``: sqlite3 directly, WAL + synchronous=FULL, one ``BEGIN IMMEDIATE`` / ``INSERT`` / ``COMMIT`` per
  row into a table shaped like ``audit_leaves`` (the row's text prepared beforehand): what one durable commit of
  that row costs on this machine;
* ``audit append``: ``server.audit.append`` through the Store as the server configures it (sqlite-utils, WAL,
  synchronous=FULL), one leaf per transaction: counter update, canonical JSON, SHA-256, insert, commit.

Both write to files in one temporary directory; every variant runs once per round, rounds alternate (BENCH_ROUNDS,
default 3, BENCH_SECONDS each), medians with their spread.  Afterwards the time to verify the whole log that the
run wrote (every leaf re-hashed, the root recomputed) is printed as well.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from .common import Report, alternate, rate

SECONDS = float(os.environ.get("BENCH_SECONDS", "2.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _payload(i: int) -> dict[str, object]:
    """An envelope event's audit payload of typical size (ids and hashes)."""
    return {"event_id": i, "actor": "person:3f2a9c1e-5b7d-4e2a-9c1e-5b7d4e2a9c1e",
            "detail": {"recipient_id": "r-7d4e2a9c", "document_id": "d-1e5b7d4e", "sha256": os.urandom(32).hex()}}


def _raw(path: Path) -> tuple[sqlite3.Connection, int]:
    from server.audit.log import canonical_json, time_text

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # rate() runs it in a thread
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE leaves (seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, "
                 "subject TEXT NOT NULL, payload TEXT NOT NULL, leaf_hash TEXT NOT NULL)")
    return conn, len(canonical_json(_payload(0))) + len(time_text(datetime.now(UTC)))


def main() -> None:
    from server.audit import AuditLog, append
    from server.audit.log import canonical_json, time_text
    from server.store import open_store

    state = Path(tempfile.mkdtemp(prefix="signet-bench-audit-"))
    try:
        store = open_store(str(state / "audit.sqlite"))
        log = AuditLog(store)
        raw, row_chars = _raw(state / "raw.sqlite")
        counter = itertools.count()
        rows = [(time_text(datetime.now(UTC)), "envelope.signed", "env-0b1c2d3e", canonical_json(_payload(i)),
                 os.urandom(32).hex()) for i in range(64)]

        def raw_insert() -> None:
            i = next(counter)
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO leaves (seq, time, kind, subject, payload, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)",
                        (i, *rows[i % len(rows)]))
            raw.execute("COMMIT")

        def audit_append() -> None:
            i = next(counter)
            append(store, "envelope.signed", "env-0b1c2d3e", _payload(i), datetime.now(UTC))

        report = Report("audit log appends (durable, one per transaction)")
        runs = alternate({"raw": lambda: rate(raw_insert, 1, SECONDS),
                          "audit": lambda: rate(audit_append, 1, SECONDS)}, ROUNDS)
        report.add(f"raw SQLite insert + commit (WAL, FULL, ~{row_chars + 60} B rows)", runs["raw"], "rows/s")
        report.add("audit append + commit (Store)", runs["audit"], "events/s",
                   baseline=f"raw SQLite insert + commit (WAL, FULL, ~{row_chars + 60} B rows)")
        t = time.perf_counter()
        verified = log.verify(b"")  # no certificate: the leaves and the tree are what is timed
        took = time.perf_counter() - t
        print(f"verify of {verified.leaves} leaves (each re-hashed, root recomputed): {took:.2f} s "
              f"({verified.leaves / took:,.0f} leaves/s)", flush=True)
        report.add("verify, leaves re-hashed per second", verified.leaves / took, "leaves/s", quiet=True)
        raw.close()
        store.close()
        report.finish()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
