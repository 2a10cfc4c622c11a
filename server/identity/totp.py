"""TOTP authenticators (RFC 6238) for people who prefer an app to SMS, e.g. operators' second factor.

pyotp computes the HOTP values (RFC 4226); this module adds what pyotp's ``verify`` lacks: a code's
time step is accepted at most once (any step not newer than the last accepted one is refused,
so a code cannot be replayed inside its 30-second window or the ±1 step drift window), and
consecutive failures lock the authenticator for a while (NIST SP 800-63B §5.2.2).  Secrets are
stored encrypted with the :class:`~server.sealing.SecretBox`.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp

from ..clock import Clock, SystemClock, from_text, to_text
from ..errors import FailedPrecondition, NotFound, RateLimited, Unauthenticated
from ..sealing import SecretBox
from ..store import IntegrityError, Store

log = logging.getLogger(__name__)


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE totp_authenticators ("
        " subject TEXT PRIMARY KEY,"
        " secret_sealed BLOB NOT NULL,"
        " last_timecode INTEGER NOT NULL DEFAULT -1,"
        " failures INTEGER NOT NULL DEFAULT 0,"
        " locked_until TEXT,"
        " created_at TEXT NOT NULL)"
    )


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class TotpPolicy:
    digits: int = 6
    interval: int = 30
    drift_steps: int = 1  # accept codes one step before or after now
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class TotpEnrollment:
    subject: str
    secret: str = field(repr=False)  # base32, shown once to the user (QR code of ``uri``)
    uri: str = field(repr=False)


def code_at(secret: str, when: float, digits: int = 6, interval: int = 30) -> str:
    totp = pyotp.TOTP(secret, digits=digits, interval=interval)
    return totp.generate_otp(int(when // interval))


class TotpAuthenticators:
    def __init__(self, store: Store, box: SecretBox, clock: Clock | None = None,
                 policy: TotpPolicy | None = None, issuer: str = "Signet") -> None:
        self._store = store
        self._box = box
        self._clock = clock or SystemClock()
        self.policy = policy or TotpPolicy()
        self._issuer = issuer
        store.migrate("totp", MIGRATIONS)

    @staticmethod
    def _aad(subject: str) -> bytes:
        return b"signet/totp/v1\x00" + subject.encode()

    def enroll(self, subject: str) -> TotpEnrollment:
        secret = pyotp.random_base32(32)  # 160 bits
        try:
            self._store.insert("totp_authenticators", {
                "subject": subject, "secret_sealed": self._box.encrypt(secret.encode(), self._aad(subject)),
                "created_at": to_text(self._clock.now())})
        except IntegrityError:
            raise FailedPrecondition(f"{subject!r} has a TOTP authenticator already; remove it first") from None
        uri = pyotp.TOTP(secret, digits=self.policy.digits, interval=self.policy.interval).provisioning_uri(
            name=subject, issuer_name=self._issuer)
        log.info("totp: enrolled %s", subject)
        return TotpEnrollment(subject, secret, uri)

    def remove(self, subject: str) -> None:
        self._store.execute("DELETE FROM totp_authenticators WHERE subject = ?", (subject,))

    def verify(self, subject: str, code: str) -> int:
        """Accept ``code`` once; returns the accepted time step.  Raises Unauthenticated or RateLimited."""
        given = "".join(code.split())
        refusal: Exception | None = None
        with self._store.transaction():
            row = self._store.query_one("SELECT * FROM totp_authenticators WHERE subject = ?", (subject,))
            if row is None:
                raise NotFound(f"{subject!r} has no TOTP authenticator")
            now = self._clock.now()
            if row["locked_until"] and now < from_text(row["locked_until"]):
                wait = (from_text(row["locked_until"]) - now).total_seconds()
                raise RateLimited(f"too many wrong codes; retry in {wait:.0f} s", retry_after=wait,
                                  reason="TOTP_LOCKED")
            secret = self._box.decrypt(bytes(row["secret_sealed"]), self._aad(subject)).decode()
            matched = self._match(secret, given, now)
            last = int(row["last_timecode"])
            if matched is not None and matched > last:
                self._store.execute("UPDATE totp_authenticators SET last_timecode = ?, failures = 0, "
                                    "locked_until = NULL WHERE subject = ?", (matched, subject))
            else:
                failures = int(row["failures"]) + 1
                locked = to_text(now + self.policy.lockout) if failures >= self.policy.max_failures else None
                self._store.execute("UPDATE totp_authenticators SET failures = ?, locked_until = ? WHERE subject = ?",
                                    (0 if locked else failures, locked, subject))
                refusal = Unauthenticated("this code was used already; wait for the next one", reason="TOTP_REPLAYED") \
                    if matched is not None else Unauthenticated("the code is incorrect", reason="TOTP_INCORRECT")
        if refusal is not None or matched is None:
            raise refusal or Unauthenticated("the code is incorrect", reason="TOTP_INCORRECT")
        return matched

    def _match(self, secret: str, given: str, now: datetime) -> int | None:
        p = self.policy
        totp = pyotp.TOTP(secret, digits=p.digits, interval=p.interval)
        current = int(now.timestamp() // p.interval)
        found = None
        # check every candidate (no early exit) so timing does not tell which step matched
        for step in range(current - p.drift_steps, current + p.drift_steps + 1):
            if hmac.compare_digest(totp.generate_otp(step).encode(), given.encode()):
                found = step if found is None else max(found, step)
        return found
