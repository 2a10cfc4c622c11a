"""TOTP: RFC 4226 / RFC 6238 vectors, one use per time step, lockout, secret sealed at rest."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import FailedPrecondition, RateLimited, Unauthenticated
from server.identity.totp import TotpAuthenticators, code_at
from server.sealing import AesGcmBox
from server.store import open_store
from tests.server_helpers import db_bytes

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize("counter,expected", list(enumerate(
    ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"])))
def test_rfc4226_hotp_vectors(counter: int, expected: str) -> None:
    assert code_at(RFC_SECRET, counter * 30) == expected  # a TOTP step is the HOTP counter


@pytest.mark.parametrize("when,expected", [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
                                           (1234567890, "89005924"), (2000000000, "69279037"),
                                           (20000000000, "65353130")])
def test_rfc6238_sha1_vectors(when: int, expected: str) -> None:
    assert code_at(RFC_SECRET, when, digits=8) == expected


@pytest.fixture
def env(tmp_path: Path) -> tuple[TotpAuthenticators, ManualClock, Path]:
    db = tmp_path / "s.db"
    clock = ManualClock()
    return TotpAuthenticators(open_store(str(db)), AesGcmBox.generate(), clock), clock, db


def test_a_code_is_accepted_once_per_time_step(env: tuple[TotpAuthenticators, ManualClock, Path]) -> None:
    auth, clock, db = env
    enrolment = auth.enroll("operator:alice")
    assert enrolment.uri.startswith("otpauth://totp/") and enrolment.secret not in repr(enrolment)
    with pytest.raises(FailedPrecondition):
        auth.enroll("operator:alice")
    now = clock.now().timestamp()
    step = auth.verify("operator:alice", code_at(enrolment.secret, now))
    assert step == int(now // 30)
    with pytest.raises(Unauthenticated) as info:  # pyotp.TOTP.verify would say True here
        auth.verify("operator:alice", code_at(enrolment.secret, now))
    assert info.value.reason == "TOTP_REPLAYED"
    with pytest.raises(Unauthenticated):  # the previous step is inside the drift window but older
        auth.verify("operator:alice", code_at(enrolment.secret, now - 30))
    assert auth.verify("operator:alice", code_at(enrolment.secret, now + 30)) == step + 1  # clock drift ahead
    clock.advance(30)
    with pytest.raises(Unauthenticated):  # step+1 was used already, though it is now "current"
        auth.verify("operator:alice", code_at(enrolment.secret, now + 30))
    clock.advance(30)
    assert auth.verify("operator:alice", code_at(enrolment.secret, now + 60)) == step + 2
    with pytest.raises(Unauthenticated):  # two steps old: outside the window
        auth.verify("operator:alice", code_at(enrolment.secret, now - 30))
    assert enrolment.secret.encode() not in db_bytes(db)


def test_lockout_after_consecutive_failures(env: tuple[TotpAuthenticators, ManualClock, Path]) -> None:
    auth, clock, _ = env
    secret = auth.enroll("op").secret
    good = code_at(secret, clock.now().timestamp())
    bad = f"{(int(good) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            auth.verify("op", bad)
    with pytest.raises(RateLimited) as info:
        auth.verify("op", good)
    assert info.value.retry_after == 15 * 60
    clock.advance(15 * 60)
    auth.verify("op", code_at(secret, clock.now().timestamp()))
