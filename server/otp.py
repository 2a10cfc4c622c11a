"""One-time codes (NIST SP 800-63B §5.1.3 out-of-band authenticators), bound to a purpose and a subject.

A code is 6 digits (8 for enrollment) from :mod:`secrets`, stored only as HMAC-SHA256 under a key derived from the
server secret (the key is not in the database, so the database alone does not let anyone
search the million possible codes).  Each code is:

- bound to ``purpose`` (``phone-verification``, ``envelope-sign`` ...) and ``binding`` (an opaque
  string the caller builds, e.g. ``person-id|+8613800138000`` or ``envelope-id|sha256-of-document``);
  issuing a new code for the same purpose and binding supersedes the old one;
- single use (a used code is refused as a replay), valid for ``ttl`` (default 5 minutes, at most
  10), and burned after ``max_attempts`` wrong guesses (default and maximum 5);
- rate limited per destination (phone number or address): one per ``min_interval`` (60 s) and
  ``hourly_limit`` (5) per rolling hour; the limit is keyed by an HMAC of the destination.

Comparison is constant-time (:func:`hmac.compare_digest`).  Time comes from an injected clock.
Codes appear in exactly one place in clear: the message handed to the delivery channel.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock, SystemClock, from_text, to_text
from .errors import InvalidArgument, RateLimited, Unauthenticated
from .notify.message import Address, Channel, Delivery, Message
from .sealing import derive_key, keyed_hash
from .store import Store

log = logging.getLogger(__name__)

DIGITS = 6


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE otp_codes ("
        " id TEXT PRIMARY KEY,"
        " purpose TEXT NOT NULL,"
        " binding TEXT NOT NULL,"
        " destination_key TEXT NOT NULL,"
        " code_mac TEXT NOT NULL,"
        " created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL,"  # active | used | superseded | exhausted | revoked
        " used_at TEXT)"
    )
    store.execute("CREATE INDEX otp_codes_binding ON otp_codes (purpose, binding, created_at)")
    store.execute("CREATE INDEX otp_codes_destination ON otp_codes (destination_key, created_at)")


def _v2(store: Store) -> None:
    store.execute("ALTER TABLE otp_codes ADD COLUMN digits INTEGER NOT NULL DEFAULT 6")


MIGRATIONS = [_v1, _v2]


@dataclass(frozen=True)
class OtpPolicy:
    ttl: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    min_interval: timedelta = timedelta(seconds=60)
    hourly_limit: int = 5

    def __post_init__(self) -> None:
        if not timedelta(0) < self.ttl <= timedelta(minutes=10):
            raise ValueError("one-time code lifetime must be more than 0 and at most 10 minutes")
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("attempts per one-time code must be between 1 and 5")
        if self.min_interval < timedelta(0) or self.hourly_limit < 1:
            raise ValueError("send rate limits must be non-negative with at least one code per hour")


@dataclass(frozen=True)
class IssuedCode:
    id: str
    purpose: str
    binding: str
    issued_at: datetime
    expires_at: datetime
    code: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """What a caller learns about a sent code: never the code itself."""

    code_id: str
    purpose: str
    expires_at: datetime
    delivery: Delivery
    timestamp_url: str = ""  # envelope signing codes of a PDF: the TSA the signature is to be timestamped by


@dataclass(frozen=True)
class AcceptedCode:
    code_id: str
    purpose: str
    binding: str
    issued_at: datetime
    used_at: datetime


class OneTimeCodes:
    def __init__(self, store: Store, hmac_key: bytes, clock: Clock | None = None,
                 policy: OtpPolicy | None = None) -> None:
        self._store = store
        self._code_key = derive_key(hmac_key, "otp/code")
        self._dest_key = derive_key(hmac_key, "otp/destination")
        self._clock = clock or SystemClock()
        self.policy = policy or OtpPolicy()
        store.migrate("otp", MIGRATIONS)

    def _mac(self, code_id: str, purpose: str, binding: str, code: str) -> str:
        return keyed_hash(self._code_key, code_id, purpose, binding, code)

    def issue(self, purpose: str, binding: str, destination: str, digits: int = DIGITS) -> IssuedCode:
        """A fresh code; raises :class:`RateLimited` when ``destination`` had too many lately."""
        if not purpose or not binding or not destination:
            raise InvalidArgument("one-time code needs a purpose, a binding and a destination")
        if not 6 <= digits <= 10:
            raise InvalidArgument("one-time codes have 6 to 10 digits")
        dest = keyed_hash(self._dest_key, destination)
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        code_id = "otp_" + secrets.token_hex(12)
        with self._store.transaction():
            now = self._clock.now()
            self._check_rate(dest, now)
            self._store.execute(
                "UPDATE otp_codes SET status = 'superseded' WHERE purpose = ? AND binding = ? AND status = 'active'",
                (purpose, binding))
            expires = now + self.policy.ttl
            self._store.insert("otp_codes", {
                "id": code_id, "purpose": purpose, "binding": binding, "destination_key": dest,
                "code_mac": self._mac(code_id, purpose, binding, code),
                "created_at": to_text(now), "expires_at": to_text(expires), "attempts": 0, "status": "active",
                "digits": digits,
            })
        log.info("otp: issued %s for %s", code_id, purpose)
        return IssuedCode(code_id, purpose, binding, now, expires, code)

    def _check_rate(self, dest: str, now: datetime) -> None:
        hour_ago = now - timedelta(hours=1)
        rows = self._store.query(
            "SELECT created_at FROM otp_codes WHERE destination_key = ? AND created_at > ? ORDER BY created_at",
            (dest, to_text(hour_ago)))
        times = [from_text(r["created_at"]) for r in rows]
        if times and now - times[-1] < self.policy.min_interval:
            wait = (times[-1] + self.policy.min_interval - now).total_seconds()
            raise RateLimited(f"a code was sent to this destination moments ago; retry in {wait:.0f} s",
                              retry_after=wait, reason="OTP_SEND_TOO_SOON")
        if len(times) >= self.policy.hourly_limit:
            oldest = times[len(times) - self.policy.hourly_limit]
            wait = (oldest + timedelta(hours=1) - now).total_seconds()
            raise RateLimited(f"too many codes sent to this destination in the last hour; retry in {wait:.0f} s",
                              retry_after=wait, reason="OTP_HOURLY_LIMIT")

    def verify(self, purpose: str, binding: str, code: str, code_id: str | None = None) -> AcceptedCode:
        """Accept ``code`` once for the latest code of ``purpose``/``binding`` (or the given ``code_id``).

        Raises :class:`Unauthenticated` with a reason: OTP_NOT_FOUND, OTP_USED (replay),
        OTP_SUPERSEDED, OTP_EXPIRED, OTP_ATTEMPTS_EXHAUSTED, OTP_REVOKED or OTP_INCORRECT.
        A wrong guess is counted (and committed) before the error is raised, so do not call this
        inside an outer ``store.transaction()``: the refusal would roll the count back.
        """
        given = "".join(code.split())
        refusal: Unauthenticated | None = None
        with self._store.transaction():
            now = self._clock.now()
            if code_id is not None:
                row = self._store.query_one(
                    "SELECT * FROM otp_codes WHERE id = ? AND purpose = ? AND binding = ?", (code_id, purpose, binding))
            else:
                row = self._store.query_one(
                    "SELECT * FROM otp_codes WHERE purpose = ? AND binding = ? "
                    "ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, created_at DESC, id DESC",
                    (purpose, binding))
            refusal = self._state_refusal(row, now)
            if refusal is None and row is not None:
                attempts = int(row["attempts"]) + 1
                expected = str(row["code_mac"]).encode("ascii")
                actual = self._mac(row["id"], purpose, binding, given).encode("ascii")
                if hmac.compare_digest(expected, actual) and len(given) == int(row["digits"]) and given.isdigit():
                    changed = self._store.execute(
                        "UPDATE otp_codes SET status = 'used', used_at = ?, attempts = ? "
                        "WHERE id = ? AND status = 'active'", (to_text(now), attempts, row["id"]))
                    if changed != 1:  # cannot happen inside the write transaction; refuse rather than assume
                        refusal = Unauthenticated("this one-time code was already used", reason="OTP_USED")
                else:
                    status = "exhausted" if attempts >= self.policy.max_attempts else "active"
                    self._store.execute("UPDATE otp_codes SET attempts = ?, status = ? WHERE id = ?",
                                        (attempts, status, row["id"]))
                    left = self.policy.max_attempts - attempts
                    refusal = Unauthenticated(
                        f"the one-time code is incorrect; {left} attempt(s) left" if left else
                        "the one-time code is incorrect and no attempts are left; request a new code",
                        reason="OTP_INCORRECT")
        if refusal is not None or row is None:
            refusal = refusal or Unauthenticated("no one-time code was issued for this request",
                                                 reason="OTP_NOT_FOUND")
            log.info("otp: refused a code for %s (%s)", purpose, refusal.reason)
            raise refusal
        log.info("otp: accepted %s for %s", row["id"], purpose)
        return AcceptedCode(row["id"], purpose, binding, from_text(row["created_at"]), now)

    def _state_refusal(self, row: dict[str, Any] | None, now: datetime) -> Unauthenticated | None:
        if row is None:
            return Unauthenticated("no one-time code was issued for this request; request one first",
                                   reason="OTP_NOT_FOUND")
        status = row["status"]
        if status == "used":
            return Unauthenticated("this one-time code was already used; request a new code", reason="OTP_USED")
        if status == "superseded":
            return Unauthenticated("a newer one-time code was sent; use that one", reason="OTP_SUPERSEDED")
        if status == "exhausted":
            return Unauthenticated("too many wrong attempts for this one-time code; request a new code",
                                   reason="OTP_ATTEMPTS_EXHAUSTED")
        if status == "revoked":
            return Unauthenticated("this one-time code was withdrawn; request a new code", reason="OTP_REVOKED")
        if now >= from_text(row["expires_at"]):
            return Unauthenticated("the one-time code has expired; request a new code", reason="OTP_EXPIRED")
        return None

    def revoke(self, code_id: str) -> None:
        self._store.execute("UPDATE otp_codes SET status = 'revoked' WHERE id = ? AND status = 'active'", (code_id,))

    def purge(self, before: datetime) -> int:
        """Forget codes that expired before ``before`` (rate limits look back one hour only)."""
        return self._store.execute("DELETE FROM otp_codes WHERE expires_at < ?", (to_text(before),))


def send_code(
    codes: OneTimeCodes,
    channel: Channel,
    *,
    purpose: str,
    binding: str,
    to: Address,
    subject: str,
    text: Callable[[str, int], str],
    topic: str | None = None,
    digits: int = DIGITS,
) -> Challenge:
    """Issue a code and deliver it; ``text(code, minutes)`` builds the message body.

    A code whose delivery failed is revoked, so it can never be guessed later.
    """
    issued = codes.issue(purpose, binding, to.value, digits)
    minutes = max(1, int(codes.policy.ttl.total_seconds() // 60))
    message = Message(to=to, subject=subject, body=text(issued.code, minutes), topic=topic or f"otp.{purpose}")
    try:
        delivery = channel.send(message)
    except BaseException:
        codes.revoke(issued.id)
        raise
    return Challenge(issued.id, purpose, issued.expires_at, delivery)
