"""The audit log without a token: leaf encoding, refused payloads, transactions, and envelope events as leaves.

Signing, verification and tampering are tested with the real audit key in tests/hsm_server/test_audit_log.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from server.audit import AuditError, AuditLog
from server.store import Store
from signet import merkle
from signet.auditformat import canonical_json, leaf_bytes
from tests.conftest import store_for_test

T0 = datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = store_for_test(tmp_path, "s.sqlite")  # PostgreSQL too with SIGNET_TEST_STORE=postgresql
    yield s
    s.close()


@pytest.mark.parametrize("payload", [{"x": 1.5}, {1: "a"}, {"x": float("nan")}, {"x": "\ud800"}, {"x": object()},
                                     {"x": b"bytes"}])
def test_payloads_that_are_not_canonical_json_are_refused(store: Store, payload: dict[Any, Any]) -> None:
    log = AuditLog(store)
    with pytest.raises(AuditError):
        log.append("k", "s", payload, T0)
    assert log.size() == 0 and store.query("SELECT * FROM audit_leaves") == []


def test_leaf_bytes_are_the_canonical_json_of_the_leaf(store: Store) -> None:
    payload = {"z": [1, None, True, {"b": "é\"\\", "a": -7}], "a": "名字", "m": {}}
    leaf = leaf_bytes(3, "2030-01-02T03:04:05.678Z", "kind \"q\"", "Zhang San 张三", payload)
    assert leaf == canonical_json({"seq": 3, "time": "2030-01-02T03:04:05.678Z", "kind": "kind \"q\"",
                                   "subject": "Zhang San 张三", "payload": payload}).encode("utf-8")
    assert leaf == ('{"kind":"kind \\"q\\"","payload":{"a":"名字","m":{},"z":[1,null,true,{"a":-7,"b":"é\\"\\\\"}]},'
                    '"seq":3,"subject":"Zhang San 张三","time":"2030-01-02T03:04:05.678Z"}').encode()
    log = AuditLog(store)
    with pytest.raises(AuditError):
        log.append("k", "\udc80", {}, T0)
    with pytest.raises(AuditError):
        log.append("", "s", {}, T0)
    assert log.append("k", "Zhang San 张三", payload, T0) == 0


def test_leaf_commits_with_the_callers_transaction(store: Store) -> None:
    log = AuditLog(store)
    with pytest.raises(RuntimeError), store.transaction():
        log.append("k", "s", {"a": 1}, T0)
        raise RuntimeError("the event failed")
    assert log.size() == 0
    assert log.append("k", "s", {"a": 1}, T0) == 0  # the rolled-back seq is reused: no gap


def _event_store(store: Store) -> Store:
    from server.envelopes.schema import MIGRATIONS

    store.migrate("envelopes", MIGRATIONS)
    AuditLog(store)
    for env in ("env-1", "env-2"):  # the rows the events refer to (foreign keys), nothing more
        store.insert("envelopes", {"id": env, "org_id": "org", "sender_person_id": "p", "sender_name": "S",
                                   "title": "T", "message": "", "tags": "[]", "state": "sent", "expires_in_days": 1,
                                   "created_at": "2030-01-01T00:00:00.000Z", "version": 1})
    return store


def test_every_envelope_event_is_an_audit_leaf(store: Store) -> None:
    from server.envelopes import events

    _event_store(store)
    detail = {"recipient_id": "r-1", "document_id": "d-1", "sha256": "ab" * 32, "code_id": "c-1"}
    first = events.append(store, "env-1", "signed", "person:p-1", T0, detail)
    second = events.append(store, "env-2", "voided", "operator:op", T0, {"reason": "typo", "was": "sent"})
    leaves = store.query("SELECT * FROM audit_leaves ORDER BY seq")
    assert [(r["seq"], r["kind"], r["subject"]) for r in leaves] == [
        (0, "envelope.signed", "env-1"), (1, "envelope.voided", "env-2")]
    assert json.loads(leaves[0]["payload"]) == {"event_id": first, "actor": "person:p-1", "detail": detail}
    assert json.loads(leaves[1]["payload"])["event_id"] == second
    # a void's free-text reason is in the (sealed) event row, and only as its SHA-256 in the public log
    assert "typo" not in leaves[1]["payload"] and "reason_sha256" in json.loads(leaves[1]["payload"])["detail"]
    stored = store.query_one("SELECT detail FROM envelope_events WHERE id = ?", (first,))
    assert stored is not None and json.loads(stored["detail"]) == detail
    assert leaves[0]["time"] == "2030-01-02T03:04:05.678Z"
    for r in leaves:
        payload = json.loads(r["payload"])
        assert merkle.leaf_hash(leaf_bytes(r["seq"], r["time"], r["kind"], r["subject"], payload)).hex() == \
            r["leaf_hash"]


def test_event_and_leaf_commit_together(store: Store) -> None:
    from server.envelopes import events

    _event_store(store)
    with pytest.raises(RuntimeError), store.transaction():
        events.append(store, "env-1", "viewed", "person:p-1", T0, {"recipient_id": "r-1"})
        raise RuntimeError("the state change failed")
    assert store.query("SELECT * FROM envelope_events") == []
    assert store.query("SELECT * FROM audit_leaves") == []
    with pytest.raises(AuditError), store.transaction():  # a leaf refused: the event is not written either
        events.append(store, "env-1", "viewed", "person:p-1", T0, {"score": 0.5})
    assert store.query("SELECT * FROM envelope_events") == []
