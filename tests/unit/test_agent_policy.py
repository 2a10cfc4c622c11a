"""Caller authorization and the key usage counter: exact under concurrency, persisted, refunded on failure."""

from __future__ import annotations

import threading

import pytest

from agent.config import KeyRule
from agent.errors import PermissionDenied, UsageLimitReached
from agent.policy import KeyPolicy, UsageCounter, caller_matches


def test_caller_patterns():
    assert caller_matches("*", "tls:x") and caller_matches("tls:*", "tls:kiosk")
    assert not caller_matches("tls:*", "local") and not caller_matches("tls:kiosk", "tls:kiosk-2")


def test_first_matching_rule_decides_and_default_applies_otherwise():
    p = KeyPolicy((KeyRule(("tls:kiosk",), key_id="aa"), KeyRule(("local",), label="desk")), ("local",))
    rule = p.authorize("tls:kiosk", "aa", None)
    assert rule is not None and rule.key_id == "aa"
    with pytest.raises(PermissionDenied) as ei:
        p.authorize("local", "aa", None)
    assert "local" in str(ei.value) and "aa" in str(ei.value)
    rule = p.authorize("local", "bb", "desk")
    assert rule is not None and rule.label == "desk"
    assert p.authorize("local", "cc", "other") is None  # default callers
    with pytest.raises(PermissionDenied):
        p.authorize("tls:kiosk", "cc", "other")
    assert p.may_use_any("tls:kiosk") and not p.may_use_any("tls:intruder")


def test_usage_limit_exact_under_64_threads_and_persisted(tmp_path):
    rule = KeyRule(("local",), key_id="aa", usage_limit=25)
    counter = UsageCounter(tmp_path / "usage.db")
    granted, refused = [], []
    barrier = threading.Barrier(64)

    def one():
        barrier.wait()
        try:
            granted.append(counter.reserve(rule))
        except UsageLimitReached:
            refused.append(1)

    ts = [threading.Thread(target=one) for _ in range(64)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(granted) == 25 and len(refused) == 39
    again = UsageCounter(tmp_path / "usage.db")  # a restarted agent sees the same count
    assert again.used(rule) == 25
    with pytest.raises(UsageLimitReached):
        again.reserve(rule)


def test_batches_are_all_or_nothing_and_failures_are_refunded(tmp_path):
    rule = KeyRule(("local",), label="k", usage_limit=10)
    c = UsageCounter(tmp_path / "u.db")
    assert c.reserve(rule, 8) == 8
    with pytest.raises(UsageLimitReached):
        c.reserve(rule, 3)
    assert c.used(rule) == 8
    c.refund(rule, 8)
    assert UsageCounter(tmp_path / "u.db").used(rule) == 0
    assert c.reserve(None, 5) == 0 and c.reserve(KeyRule(("local",), label="free"), 5) == 0  # unlimited
