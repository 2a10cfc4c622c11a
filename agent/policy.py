"""Per-key caller authorization and key usage limits counted exactly under concurrency and persisted.

A key usage limit (SignServer's KEYUSAGELIMIT) is a reservation: signatures are
reserved before the token is asked and the reservation is committed to disk
(SQLite, synchronous=FULL) first, so N concurrent requests against a limit L
produce at most L signatures even across a crash; a reservation whose signing
failed is refunded, so without failures they produce exactly L.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import sqlite_utils

from .config import AgentConfig, KeyRule
from .errors import PermissionDenied, UsageLimitReached

log = logging.getLogger(__name__)


def caller_matches(pattern: str, caller: str) -> bool:
    """``*`` is any caller, ``tls:*`` any mTLS client; otherwise the exact identity."""
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return caller.startswith(pattern[:-1])
    return pattern == caller


class KeyPolicy:
    """Decides whether a caller may use a key; the first rule that matches the key applies."""

    def __init__(self, rules: tuple[KeyRule, ...], default_callers: tuple[str, ...]) -> None:
        self.rules = rules
        self.default_callers = default_callers

    def rule_for(self, key_id: str, label: str | None) -> KeyRule | None:
        return next((r for r in self.rules if r.matches(key_id, label)), None)

    def needs_label(self) -> bool:
        return any(r.label is not None for r in self.rules)

    def may_use_any(self, caller: str) -> bool:
        """Whether some rule (or the default) lets this caller use some key."""
        patterns = [p for r in self.rules for p in r.callers] + list(self.default_callers)
        return any(caller_matches(p, caller) for p in patterns)

    def authorize(self, caller: str, key_id: str, label: str | None) -> KeyRule | None:
        """The rule that governs this key (None: default policy); raises PermissionDenied."""
        rule = self.rule_for(key_id, label)
        allowed = rule.callers if rule is not None else self.default_callers
        if not any(caller_matches(p, caller) for p in allowed):
            log.warning("caller %s refused for key %s", caller, key_id)
            raise PermissionDenied(
                f"caller {caller!r} may not use key {key_id}; ask the agent's administrator to add it "
                "to the key's callers in the agent configuration"
            )
        return rule


class UsageCounter:
    """Signatures made per limited key, in a small SQLite database (WAL, synchronous=FULL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db = sqlite_utils.Database(conn)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.table("usage").create({"counter": str, "used": int}, pk="counter", if_not_exists=True)
        self._lock = threading.Lock()
        self._used: dict[str, int] = {str(row["counter"]): int(row["used"]) for row in self._db.table("usage").rows}

    def used(self, rule: KeyRule) -> int:
        with self._lock:
            return self._used.get(rule.counter_name, 0)

    def _write(self, name: str, used: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO usage(counter, used) VALUES (?, ?) "
                "ON CONFLICT(counter) DO UPDATE SET used = excluded.used", [name, used])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def reserve(self, rule: KeyRule | None, n: int = 1) -> int:
        """Reserve ``n`` signatures (all or none); returns how many were reserved (0 when unlimited)."""
        if rule is None or rule.usage_limit is None:
            return 0
        name = rule.counter_name
        with self._lock:
            used = self._used.get(name, 0)
            if used + n > rule.usage_limit:
                raise UsageLimitReached(
                    f"key {rule.key_id or rule.label} has reached its usage limit "
                    f"({used} of {rule.usage_limit} signatures made; {n} requested)"
                )
            self._write(name, used + n)  # durable before the token is asked
            self._used[name] = used + n
        return n

    def refund(self, rule: KeyRule | None, n: int) -> None:
        """Give back reservations whose signatures were not made."""
        if rule is None or rule.usage_limit is None or n <= 0:
            return
        name = rule.counter_name
        with self._lock:
            used = max(0, self._used.get(name, 0) - n)
            self._write(name, used)
            self._used[name] = used


class Authorizer:
    """Policy plus counters, as the signing path uses them."""

    def __init__(self, config: AgentConfig) -> None:
        self.policy = KeyPolicy(config.keys, config.default_callers)
        self.usage = UsageCounter(config.usage_path)
