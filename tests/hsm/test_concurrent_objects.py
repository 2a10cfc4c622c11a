"""Keys generated and deleted on a token while other threads of the same process use it (issue found by the
crash soak: a chain read failed with "deleted while in use" when another thread deleted an unrelated key)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.hsm


def _while_churning(tok: Any, use: Callable[[], object], calls: int = 200) -> tuple[int, list[str], list[str]]:
    """(keys generated, errors of the churning thread, errors of ``use``) with one thread generating and deleting
    keys in a loop while this one calls ``use`` ``calls`` times."""
    stop = threading.Event()
    churned, churn_errors, use_errors = [0], [], []

    def churn() -> None:
        while not stop.is_set():
            try:
                k = tok.generate_key("ec-p256", f"churn-{churned[0]}")
                tok.delete_key(k.key_id)
                churned[0] += 1
            except Exception as e:  # reported by the assertion, whatever it is
                churn_errors.append(repr(e))

    th = threading.Thread(target=churn)
    th.start()
    try:
        for _ in range(calls):
            try:
                use()
            except Exception as e:  # reported by the assertion, whatever it is
                use_errors.append(repr(e))
    finally:
        stop.set()
        th.join()
    return churned[0], churn_errors, use_errors


@pytest.mark.parametrize("what", ["list keys", "read a key", "read its chain", "sign"])
def test_other_keys_come_and_go_while_a_key_is_used(logged_in_token, what):
    _, tok = logged_in_token
    kept = tok.generate_key("ec-p256", "kept")
    digest = hashlib.sha256(b"contract").digest()
    use = {"list keys": tok.keys, "read a key": lambda: tok.key(kept.key_id),
           "read its chain": lambda: tok.chain(kept.key_id),
           "sign": lambda: tok.sign_digest(kept.key_id, digest)}[what]
    churned, churn_errors, use_errors = _while_churning(tok, use)
    assert use_errors == [] and churn_errors == []
    assert churned > 0  # the race was there to be lost
    assert [k.key_id for k in tok.keys()] == [kept.key_id]
