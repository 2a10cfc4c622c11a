"""Storage for the server: one narrow interface, SQLite (sqlite-utils) by default.

Domain modules (identity, ca, envelopes, ...) talk to :class:`Store` only:
parameterised SQL with ``?`` placeholders in the common subset of SQLite and
PostgreSQL, transactions, and per-component schema migrations.  They never
import sqlite3 or sqlite_utils, so a PostgreSQL implementation can follow
without touching them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .fields import FieldSealer, Sealed

Row = dict[str, Any]
Migration = Callable[["Store"], None]


class StoreError(Exception):
    """Base class of storage errors."""


class IntegrityError(StoreError):
    """A uniqueness or foreign-key constraint refused the write."""


class StoreBusy(StoreError):
    """No database connection came free in time (PostgreSQL's pool): the caller may retry (UNAVAILABLE)."""


class Store(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""

    def insert(self, table: str, row: Row) -> int:
        """Insert one row; returns its integer rowid/primary key when there is one."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all (re-entrant)."""

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Apply the not-yet-applied migrations of a component, in order; returns its version."""

    def attach_field_sealer(self, sealer: FieldSealer) -> None:
        """Encrypt :class:`~.fields.Sealed` values written from now on and open sealed values read."""

    def try_lead(self) -> bool:
        """Whether this process is the one that runs the background work on this store (several processes may
        share a PostgreSQL store; a SQLite store has one)."""

    def close(self) -> None: ...


def open_store(url: str, *, password: str | None = None) -> Store:
    """``sqlite:///path/to/db`` or a plain path (SQLite), or ``postgresql://user@host/db`` (PostgreSQL; the
    password given apart, never in the URL)."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, password=password)
    from .sqlite import SqliteStore

    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") - 1:] if url.startswith("sqlite:////") else url[len("sqlite:///"):])
    if "://" in url:
        raise StoreError(f"unsupported store URL scheme {url.split('://', maxsplit=1)[0]!r}: sqlite:/// or postgresql://")
    return SqliteStore(url)


__all__ = ["FieldSealer", "IntegrityError", "Iterator", "Migration", "Row", "Sealed", "Store", "StoreError",
           "open_store"]
