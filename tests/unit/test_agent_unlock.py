"""Unlock grants on a real SoftHSM token: bounds, per-call PIN checks against a logged-in token, logout."""

from __future__ import annotations

import pytest

from agent.config import UnlockPolicy
from agent.errors import GrantExhausted
from agent.unlock import UnlockManager
from hsm import LoginRequired, PinIncorrect


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def env(make_token, hsm_root):
    t = make_token("unl")
    clock = Clock()
    m = UnlockManager(UnlockPolicy(max_seconds=60, max_signatures=5), clock=clock)
    yield t, hsm_root.token(serial=t.serial), m, clock
    m.close()


def test_grant_is_capped_by_policy_and_ends_by_count(env):
    t, tok, m, clock = env
    g = m.unlock("local", tok, t.pin, ttl_seconds=10_000, max_signatures=10_000)
    assert g.left == 5 and g.expires_at == clock() + 60 and tok.logged_in
    with m.use("local", tok, None, 3):
        pass
    with pytest.raises(GrantExhausted):
        with m.use("local", tok, None, 3):
            pass
    with m.use("local", tok, None, 2):
        pass
    assert not tok.logged_in  # the last signature ended the grant: logged out at once
    with pytest.raises(LoginRequired):
        with m.use("local", tok, None, 1):
            pass


def test_grant_expires_and_reaper_logs_out(env):
    t, tok, m, clock = env
    m.unlock("local", tok, t.pin)
    clock.t += 61
    m.reap()
    assert not tok.logged_in and m.unlocked_serials("local") == []


def test_failed_operation_gives_signatures_back(env):
    t, tok, m, _ = env
    g = m.unlock("local", tok, t.pin, max_signatures=2)
    with pytest.raises(RuntimeError):
        with m.use("local", tok, None, 2):
            raise RuntimeError("token said no")
    assert g.left == 2


def test_other_callers_pin_is_checked_and_counted_while_logged_in(env):
    t, tok, m, _ = env
    m.unlock("alice", tok, t.pin)
    before = tok.pin_tries_left()
    with pytest.raises(PinIncorrect) as ei:
        with m.use("bob", tok, "0000", 1):
            pass
    assert ei.value.remaining == before - 1 == tok.pin_tries_left()
    with m.use("bob", tok, t.pin, 1):  # the right PIN works and resets the count
        pass
    assert tok.pin_tries_left() == before
    with pytest.raises(LoginRequired):  # bob has no grant of his own
        with m.use("bob", tok, None, 1):
            pass
    assert m.lock("alice", tok.serial) is True and not tok.logged_in
