"""The time-stamp authority's record: every serial number it drew, unique, written before the token leaves.

Portable SQL through :class:`server.store.Store` only.  Serials are lowercase hex text under a UNIQUE
constraint, so two server processes sharing the store can never issue the same one: the second insert
fails and that process draws again.  A row whose token was never released (the HSM failed after the
insert) stays: the serial is burnt, not reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .clock import from_text, to_text
from .store import IntegrityError, Store

COMPONENT = "tsa"


def _v1(store: Store) -> None:
    store.execute("""
        CREATE TABLE tsa_serials (
            serial TEXT NOT NULL UNIQUE,
            gen_time TEXT NOT NULL,
            policy TEXT NOT NULL,
            hash_algorithm TEXT NOT NULL,
            message_imprint TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )""")
    store.execute("CREATE INDEX tsa_serials_gen_time ON tsa_serials (gen_time)")


MIGRATIONS = [_v1]


def migrate(store: Store) -> int:
    return store.migrate(COMPONENT, MIGRATIONS)


@dataclass(frozen=True)
class IssuedStamp:
    serial: int
    gen_time: datetime
    policy: str
    hash_algorithm: str
    message_imprint: bytes


def record(store: Store, stamp: IssuedStamp, *, now: datetime) -> bool:
    """Enter a drawn serial; False when it was drawn before (draw another)."""
    try:
        store.insert("tsa_serials", {
            "serial": format(stamp.serial, "x"), "gen_time": to_text(stamp.gen_time), "policy": stamp.policy,
            "hash_algorithm": stamp.hash_algorithm, "message_imprint": stamp.message_imprint.hex(),
            "recorded_at": to_text(now),
        })
    except IntegrityError:
        return False
    return True


def find(store: Store, serial: int) -> IssuedStamp | None:
    row = store.query_one("SELECT * FROM tsa_serials WHERE serial = ?", (format(serial, "x"),))
    if row is None:
        return None
    return IssuedStamp(int(row["serial"], 16), from_text(row["gen_time"]), row["policy"], row["hash_algorithm"],
                       bytes.fromhex(row["message_imprint"]))


def count(store: Store) -> int:
    row = store.query_one("SELECT COUNT(*) AS n FROM tsa_serials")
    return int(row["n"]) if row else 0
