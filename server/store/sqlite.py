"""SQLite implementation of the Store through sqlite-utils (WAL, synchronous=FULL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from . import IntegrityError, Migration, Row, StoreError
from .fields import FieldSealer, bind, open_row


class SqliteStore:
    """One connection per thread; every write durable before it is acknowledged."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate_lock = threading.Lock()
        self.field_sealer: FieldSealer | None = None
        db = self.db  # create the file and set WAL now, not on first use
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA secure_delete=ON")  # a replaced or deleted value leaves no readable trace
            db = self._local.db = sqlite_utils.Database(conn)
            self._local.depth = 0
        return db

    def attach_field_sealer(self, sealer: FieldSealer) -> None:
        """Encrypt :class:`~.fields.Sealed` values from now on, and open sealed values on reading."""
        self.field_sealer = sealer

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            cur = self.conn.execute(sql, bind(self.field_sealer, params))
        except sqlite3.IntegrityError as e:
            raise IntegrityError(str(e)) from e
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return cur.rowcount

    def insert(self, table: str, row: Row) -> int:
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        try:
            sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'  # noqa: S608 - names from code, values bound
            cur = self.conn.execute(sql, bind(self.field_sealer, tuple(row.values())))
        except sqlite3.IntegrityError as e:
            raise IntegrityError(str(e)) from e
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return int(cur.lastrowid or 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            cur = self.conn.execute(sql, bind(self.field_sealer, params))
            rows = cur.fetchall()
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        names = [d[0] for d in cur.description or ()]
        return [open_row(self.field_sealer, names, r) for r in rows]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        db = self.db
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        db.conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        with self._migrate_lock, self.transaction():
            row = self.query_one("SELECT version FROM schema_versions WHERE component = ?", (component,))
            version = int(row["version"]) if row else 0
            if version > len(migrations):
                raise StoreError(
                    f"database schema of {component!r} is version {version}, newer than this "
                    f"program knows ({len(migrations)}); upgrade signet-server"
                )
            for i in range(version, len(migrations)):
                migrations[i](self)
            if len(migrations) != version:
                self.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, len(migrations)),
                )
            return len(migrations)

    def try_lead(self) -> bool:
        """Always: one process per SQLite file runs everything, the background work included."""
        return True

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
