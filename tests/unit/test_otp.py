"""One-time codes: single use, expiry, attempt limit, send rate limit, hash-only storage, delivery."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import RateLimited, Unauthenticated, Unavailable
from server.notify import Address, OutboxChannel, WebhookChannel
from server.otp import OneTimeCodes, OtpPolicy, send_code
from server.sealing import AesGcmBox
from server.store import open_store
from server.webhooks import RetryPolicy, WebhookTarget
from tests.server_helpers import db_bytes, http_receiver

KEY = b"k" * 32
PHONE = "+8613800138000"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "server.db"


@pytest.fixture
def codes(db_path: Path, clock: ManualClock) -> OneTimeCodes:
    return OneTimeCodes(open_store(str(db_path)), KEY, clock)


def refused(reason: str) -> pytest.RaisesExc:
    return pytest.raises(Unauthenticated, check=lambda e: e.reason == reason)


def test_code_is_six_digits_and_accepted_once(codes: OneTimeCodes) -> None:
    issued = codes.issue("phone-verification", "p1|" + PHONE, PHONE)
    assert re.fullmatch(r"\d{6}", issued.code)
    accepted = codes.verify("phone-verification", "p1|" + PHONE, issued.code)
    assert accepted.code_id == issued.id
    with refused("OTP_USED"):
        codes.verify("phone-verification", "p1|" + PHONE, issued.code)
    with refused("OTP_USED"):
        codes.verify("phone-verification", "p1|" + PHONE, issued.code, code_id=issued.id)


def test_code_is_bound_to_purpose_and_binding(codes: OneTimeCodes) -> None:
    issued = codes.issue("envelope-sign", "env1|sha256:aa", PHONE)
    with refused("OTP_NOT_FOUND"):
        codes.verify("envelope-sign", "env1|sha256:bb", issued.code)  # other document hash
    with refused("OTP_NOT_FOUND"):
        codes.verify("phone-verification", "env1|sha256:aa", issued.code)
    with refused("OTP_NOT_FOUND"):
        codes.verify("envelope-sign", "env1|sha256:bb", issued.code, code_id=issued.id)
    codes.verify("envelope-sign", "env1|sha256:aa", issued.code)


def test_expiry_is_exact(codes: OneTimeCodes, clock: ManualClock) -> None:
    first = codes.issue("p", "b1", "+8613800000001")
    clock.advance(5 * 60 - 0.001)
    codes.verify("p", "b1", first.code)
    second = codes.issue("p", "b2", "+8613800000002")
    clock.advance(5 * 60)
    with refused("OTP_EXPIRED"):
        codes.verify("p", "b2", second.code)


def test_configurable_ttl_within_nist_bound(db_path: Path, clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        OtpPolicy(ttl=timedelta(minutes=10, seconds=1))
    with pytest.raises(ValueError):
        OtpPolicy(max_attempts=6)
    codes = OneTimeCodes(open_store(str(db_path)), KEY, clock, OtpPolicy(ttl=timedelta(minutes=10)))
    issued = codes.issue("p", "b", PHONE)
    assert issued.expires_at - issued.issued_at == timedelta(minutes=10)
    clock.advance(9 * 60 + 59)
    codes.verify("p", "b", issued.code)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_five_wrong_attempts_burn_the_code(codes: OneTimeCodes, db_path: Path, clock: ManualClock) -> None:
    issued = codes.issue("p", "b", PHONE)
    messages = []
    for _ in range(5):
        with refused("OTP_INCORRECT") as info:
            codes.verify("p", "b", wrong(issued.code))
        messages.append(str(info.value))
    assert "4 attempt(s) left" in messages[0] and "no attempts are left" in messages[4]
    # the failures were committed although each verify raised: a fresh instance sees the burnt code
    again = OneTimeCodes(open_store(str(db_path)), KEY, clock)
    with refused("OTP_ATTEMPTS_EXHAUSTED"):
        again.verify("p", "b", issued.code)


def test_malformed_input_counts_as_an_attempt_and_spaces_are_ignored(codes: OneTimeCodes) -> None:
    issued = codes.issue("p", "b", PHONE)
    with refused("OTP_INCORRECT") as info:
        codes.verify("p", "b", issued.code + "0")
    assert "4 attempt(s) left" in str(info.value)
    codes.verify("p", "b", f" {issued.code[:3]} {issued.code[3:]} ")


def test_new_code_supersedes_the_old_one(codes: OneTimeCodes, clock: ManualClock,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    digits = iter(["111111", "222222"])  # two different codes, whatever the random draw would have given
    monkeypatch.setattr(secrets, "randbelow", lambda n: int(next(digits)))  # server.otp draws with it
    old = codes.issue("p", "b", PHONE)
    clock.advance(61)
    new = codes.issue("p", "b", PHONE)
    assert (old.code, new.code) == ("111111", "222222")
    with refused("OTP_SUPERSEDED"):
        codes.verify("p", "b", old.code, code_id=old.id)
    with refused("OTP_INCORRECT"):
        codes.verify("p", "b", old.code)
    codes.verify("p", "b", new.code)


def test_send_rate_limit_per_phone(codes: OneTimeCodes, clock: ManualClock) -> None:
    codes.issue("p", "b1", PHONE)
    clock.advance(59)
    with pytest.raises(RateLimited) as info:
        codes.issue("p", "b2", PHONE)
    assert info.value.retry_after == pytest.approx(1.0) and info.value.reason == "OTP_SEND_TOO_SOON"
    codes.issue("p", "b3", "+8613900139000")  # another phone is not limited
    clock.advance(1)
    for i in range(4):  # 2nd..5th within the hour, one a minute
        codes.issue("p", f"c{i}", PHONE)
        clock.advance(60)
    # t = 300 s after the first: a 6th within the hour is refused until the first leaves the window
    with pytest.raises(RateLimited) as info:
        codes.issue("p", "c-late", PHONE)
    assert info.value.reason == "OTP_HOURLY_LIMIT"
    assert info.value.retry_after == pytest.approx(3600 - 300)
    clock.advance(3600 - 300 - 0.001)
    with pytest.raises(RateLimited):
        codes.issue("p", "c-edge", PHONE)
    clock.advance(0.001)  # waiting exactly retry_after is enough
    codes.issue("p", "c-after", PHONE)


def test_refused_sends_do_not_count(db_path: Path, clock: ManualClock) -> None:
    codes = OneTimeCodes(open_store(str(db_path)), KEY, clock, OtpPolicy(min_interval=timedelta(0), hourly_limit=2))
    codes.issue("p", "a", PHONE)
    codes.issue("p", "b", PHONE)
    for _ in range(3):
        with pytest.raises(RateLimited):
            codes.issue("p", "c", PHONE)
    clock.advance(3600.001)
    codes.issue("p", "d", PHONE)


def test_only_a_hash_is_stored(codes: OneTimeCodes, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issued = [codes.issue("p", f"binding-{i}", f"+86138000000{i:02d}") for i in range(3)]
    codes.verify("p", "binding-0", issued[0].code)
    with pytest.raises(Unauthenticated) as info:
        codes.verify("p", "binding-1", wrong(issued[1].code))
    data = db_bytes(db_path)
    assert b"binding-2" in data  # control: we are reading the right bytes
    for i in issued:
        assert i.code.encode() not in data
        assert i.code not in caplog.text
        assert i.code not in repr(i)
    assert issued[1].code not in str(info.value)


def test_concurrent_verifications_accept_a_code_once(db_path: Path, clock: ManualClock) -> None:
    codes = OneTimeCodes(open_store(str(db_path)), KEY, clock)
    issued = codes.issue("p", "b", PHONE)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            codes.verify("p", "b", issued.code)
            results.append("ok")
        except Unauthenticated as e:
            results.append(e.reason)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["OTP_USED"] * 3 + ["ok"]


def test_send_code_delivers_through_the_channel(db_path: Path, clock: ManualClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(str(db_path))
    codes = OneTimeCodes(store, KEY, clock)
    outbox = OutboxChannel(store, AesGcmBox.generate(), clock)
    challenge = send_code(codes, outbox, purpose="envelope-sign", binding="env9|sha256:00", to=Address.phone(PHONE),
                          subject="Sign", text=lambda code, minutes: f"code {code}, valid {minutes} min")
    assert challenge.delivery.channel == "outbox"
    body = outbox.read(challenge.delivery.reference).body
    code = re.fullmatch(r"code (\d{6}), valid 5 min", body)
    assert code is not None
    assert code.group(1) not in caplog.text
    assert code.group(1).encode() not in db_bytes(db_path)
    codes.verify("envelope-sign", "env9|sha256:00", code.group(1), code_id=challenge.code_id)


def test_code_whose_delivery_failed_is_revoked(db_path: Path, clock: ManualClock) -> None:
    store = open_store(str(db_path))
    codes = OneTimeCodes(store, KEY, clock)
    with http_receiver(lambda req, i: (503, {}, b"")) as rec:
        channel = WebhookChannel(WebhookTarget(rec.url, b"s" * 32, allow_http=True, retry=RetryPolicy(max_attempts=1)))
        with pytest.raises(Unavailable):
            send_code(codes, channel, purpose="p", binding="b", to=Address.phone(PHONE), subject="s",
                      text=lambda code, minutes: code)
        sent_code = rec.requests[0].body.decode()
    assert re.search(r'"text":"(\d{6})"', sent_code)
    code = re.search(r'"text":"(\d{6})"', sent_code).group(1)  # type: ignore[union-attr]
    with refused("OTP_REVOKED"):
        codes.verify("p", "b", code)
