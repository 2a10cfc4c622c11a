"""Unlock grants on a real SoftHSM token: handles, bounds, expiry on a monotonic clock, removal, per-call PIN checks,
the per-caller PIN throttle."""

from __future__ import annotations

import pytest

from agent.clock import ManualClock
from agent.config import UnlockPolicy
from agent.errors import GrantExhausted, PinThrottled
from agent.unlock import UnlockManager
from hsm import LoginRequired, PinIncorrect

pytestmark = pytest.mark.hsm


@pytest.fixture
def env(make_token, hsm_root):
    t = make_token("unl")
    clock = ManualClock()
    m = UnlockManager(UnlockPolicy(max_seconds=60, max_signatures=5, pin_tries_per_minute=3), clock=clock)
    yield t, hsm_root.token(serial=t.serial), m, clock
    m.close()


def test_a_grant_needs_its_handle_and_its_caller(env):
    t, tok, m, _ = env
    handle, g = m.unlock("local", tok, t.pin)
    assert len(handle) >= 32 and g.left == 5  # 192 random bits, URL-safe base64
    with pytest.raises(LoginRequired):  # same caller, no handle: another process of the user gets nothing
        with m.use("local", tok, None, 1):
            pass
    with pytest.raises(LoginRequired):  # a guessed handle
        with m.use("local", tok, None, 1, handle[:-2] + "xx"):
            pass
    with pytest.raises(LoginRequired):  # the right handle from another caller
        with m.use("tls:urn:x", tok, None, 1, handle):
            pass
    with m.use("local", tok, None, 1, handle):
        pass
    assert g.left == 4


def test_grant_is_capped_by_policy_and_ends_by_count(env):
    t, tok, m, clock = env
    handle, g = m.unlock("local", tok, t.pin, ttl_seconds=10_000, max_signatures=10_000)
    assert g.left == 5 and g.expires_mono == clock.monotonic() + 60 and tok.logged_in
    with m.use("local", tok, None, 3, handle):
        pass
    with pytest.raises(GrantExhausted):
        with m.use("local", tok, None, 3, handle):
            pass
    with m.use("local", tok, None, 2, handle):
        pass
    assert not tok.logged_in  # the last signature ended the grant: logged out at once
    with pytest.raises(LoginRequired):
        with m.use("local", tok, None, 1, handle):
            pass


def test_the_default_grant_covers_one_signature(make_token, hsm_root):
    t = make_token("one")
    tok = hsm_root.token(serial=t.serial)
    m = UnlockManager(UnlockPolicy())
    try:
        handle, g = m.unlock("local", tok, t.pin)
        assert g.left == 1
        with m.use("local", tok, None, 1, handle):
            pass
        with pytest.raises(LoginRequired):
            with m.use("local", tok, None, 1, handle):
                pass
    finally:
        m.close()


def test_grant_expires_on_the_monotonic_clock_and_reaper_logs_out(env):
    t, tok, m, clock = env
    handle, _ = m.unlock("local", tok, t.pin)
    clock.advance(59)
    assert m.unlocked_serials("local") == [tok.serial]
    clock.advance(2)
    m.reap()
    assert not tok.logged_in and m.unlocked_serials("local") == []
    with pytest.raises(LoginRequired):
        with m.use("local", tok, None, 1, handle):
            pass


def test_token_removal_ends_every_grant_on_it(env):
    t, tok, m, _ = env
    handle, _ = m.unlock("local", tok, t.pin)
    m.token_removed(tok.serial)
    with pytest.raises(LoginRequired):
        with m.use("local", tok, None, 1, handle):
            pass


def test_failed_operation_gives_signatures_back(env):
    t, tok, m, _ = env
    handle, g = m.unlock("local", tok, t.pin, max_signatures=2)
    with pytest.raises(RuntimeError):
        with m.use("local", tok, None, 2, handle):
            raise RuntimeError("token said no")
    assert g.left == 2


def test_other_callers_pin_is_checked_and_counted_while_logged_in(env):
    t, tok, m, _ = env
    handle, _ = m.unlock("alice", tok, t.pin)
    before = tok.pin_tries_left()
    with pytest.raises(PinIncorrect) as ei:
        with m.use("bob", tok, "0000", 1):
            pass
    assert ei.value.remaining == before - 1 == tok.pin_tries_left()
    with m.use("bob", tok, t.pin, 1):  # the right PIN works and resets the count
        pass
    assert tok.pin_tries_left() == before
    with pytest.raises(LoginRequired):  # bob has no grant of his own
        with m.use("bob", tok, None, 1, handle):
            pass
    assert m.lock("alice", tok.serial) is True and not tok.logged_in


def test_wrong_pins_are_throttled_per_caller(env):
    t, tok, m, clock = env
    for _ in range(3):
        with pytest.raises(PinIncorrect):
            m.unlock("mallory", tok, "0000")
    tries = tok.pin_tries_left()
    with pytest.raises(PinThrottled) as ei:  # refused before the token is asked: the count does not move
        m.unlock("mallory", tok, t.pin)
    assert ei.value.retry_after > 0 and tok.pin_tries_left() == tries
    handle, _ = m.unlock("alice", tok, t.pin)  # another caller is not held back
    assert handle
    clock.advance(61)
    m.unlock("mallory", tok, t.pin)  # a minute later the window has passed
