"""The audit log on a real SQLite store, its heads signed by the audit key on a real SoftHSM token (``pki``).

Tampering goes straight to the tables with SQL, as someone with the database file would; ``verify`` must name
the leaf or head.  ``signet-admin audit verify|head`` runs through ``server.admin.main``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.audit import AuditError, AuditLog
from server.ca import Role
from server.clock import ManualClock
from server.store import Store, open_store
from signet import merkle
from signet.auditformat import canonical_json, leaf_bytes

T0 = datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(str(tmp_path / "s.sqlite"))
    yield s
    s.close()


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append("envelope.test", f"env-{i % 3}", {"event_id": i, "sha256": f"{i:064x}", "ok": i % 2 == 0},
                   T0 + timedelta(milliseconds=i))


def _cert(pki: Any) -> bytes:
    return pki.keys.certificate_der(Role.AUDIT)


def test_append_sign_prove_verify(pki: Any, store: Store) -> None:
    log = AuditLog(store)
    assert log.head() is None
    assert log.verify(_cert(pki)).ok
    _fill(log, 5)
    signer = pki.keys.signer(Role.AUDIT)
    h5 = log.sign_head(signer, T0 + timedelta(seconds=1))
    assert h5.tree_size == 5 and h5.timestamp == "2030-01-02T03:04:06.678Z"
    assert log.sign_head(signer, T0 + timedelta(seconds=2)) == h5  # not grown: the same head
    _fill(log, 6, start=5)
    h11 = log.sign_head(signer, T0 + timedelta(seconds=3))
    assert h11.tree_size == 11 and log.head() == h11

    row = log.leaf(7)
    assert row is not None
    payload = json.loads(row["payload"])
    assert row["payload"] == canonical_json(payload) == (
        '{"event_id":7,"ok":false,"sha256":"' + f"{7:064x}" + '"}')
    leaf = leaf_bytes(7, row["time"], row["kind"], row["subject"], payload)
    assert leaf.startswith(b'{"kind":"envelope.test","payload":{"event_id":7,')
    assert b'"seq":7,"subject":"env-1","time":"2030-01-02T03:04:05.685Z"}' in leaf
    assert merkle.leaf_hash(leaf).hex() == row["leaf_hash"]
    merkle.verify_inclusion(merkle.leaf_hash(leaf), 7, 11, log.inclusion(7, 11), h11.root_hash)
    merkle.verify_consistency(5, 11, h5.root_hash, h11.root_hash, log.consistency(5, 11))

    report = log.verify(_cert(pki))
    assert report.ok, report.problems
    assert (report.leaves, report.heads, report.latest) == (11, 2, h11)
    with pytest.raises(AuditError):
        log.inclusion(11, 11)
    with pytest.raises(AuditError):
        log.consistency(5, 12)
    _fill(log, 1, start=11)
    with pytest.raises(AuditError):
        log.sign_head(signer, T0)  # the clock went back behind the newest head


def _flip_hex(text: str, i: int = 0) -> str:
    return text[:i] + ("1" if text[i] != "1" else "2") + text[i + 1:]


@pytest.fixture
def signed(pki: Any, store: Store) -> AuditLog:
    """A log of 20 leaves with heads at 4, 9 and 20."""
    log = AuditLog(store)
    signer = pki.keys.signer(Role.AUDIT)
    for n, at in ((4, 1), (5, 2), (11, 3)):
        _fill(log, n, start=log.size())
        log.sign_head(signer, T0 + timedelta(seconds=at))
    assert [h.tree_size for h in log.heads()] == [4, 9, 20]
    return log


def test_flipped_payload_byte_names_the_leaf(pki: Any, signed: AuditLog, store: Store) -> None:
    row = signed.leaf(6)
    assert row is not None
    store.execute("UPDATE audit_leaves SET payload = ? WHERE seq = 6", (row["payload"].replace("6", "7", 1),))
    report = signed.verify(_cert(pki))
    assert not report.ok
    assert report.bad_leaves() == [6] and report.bad_heads() == []
    assert "changed after it was logged" in str(report.problems[0])


def test_payload_that_no_longer_parses_names_the_leaf(pki: Any, signed: AuditLog, store: Store) -> None:
    store.execute("UPDATE audit_leaves SET payload = '{\"event_id\":3,' WHERE seq = 3")
    report = signed.verify(_cert(pki))
    assert report.bad_leaves() == [3] and report.bad_heads() == []


@pytest.mark.parametrize("column", ["time", "kind", "subject"])
def test_changed_leaf_fields_name_the_leaf(pki: Any, signed: AuditLog, store: Store, column: str) -> None:
    new = {"time": "2030-01-02T03:04:05.999Z", "kind": "envelope.other", "subject": "env-9"}[column]
    store.execute(f"UPDATE audit_leaves SET {column} = ? WHERE seq = 12", (new,))  # noqa: S608 - test's own column
    assert signed.verify(_cert(pki)).bad_leaves() == [12]


def test_changed_leaf_hash_names_the_leaf_not_the_heads(pki: Any, signed: AuditLog, store: Store) -> None:
    row = signed.leaf(15)
    assert row is not None
    store.execute("UPDATE audit_leaves SET leaf_hash = ? WHERE seq = 15", (_flip_hex(row["leaf_hash"], 10),))
    report = signed.verify(_cert(pki))
    assert report.bad_leaves() == [15] and report.bad_heads() == []
    assert "stored leaf hash was changed" in report.problems[0].message


def test_rewritten_leaf_and_hash_is_caught_by_the_heads(pki: Any, signed: AuditLog, store: Store) -> None:
    """Someone rewrites leaf 6 consistently (fields and hash): the signed roots from 9 on no longer match."""
    row = signed.leaf(6)
    assert row is not None
    payload = json.loads(row["payload"]) | {"ok": "forged"}
    forged = merkle.leaf_hash(leaf_bytes(6, row["time"], row["kind"], row["subject"], payload)).hex()
    store.execute("UPDATE audit_leaves SET payload = ?, leaf_hash = ? WHERE seq = 6", (canonical_json(payload), forged))
    report = signed.verify(_cert(pki))
    assert report.bad_leaves() == [] and report.bad_heads() == [9, 20]
    assert "leaves 4..8" in str(report.problems[0])


@pytest.mark.parametrize("column", ["root_hash", "signature", "timestamp", "tree_size", "spki_sha256"])
def test_flipped_head_byte_names_the_head(pki: Any, signed: AuditLog, store: Store, column: str) -> None:
    row = store.query_one("SELECT * FROM audit_heads WHERE tree_size = 9")
    assert row is not None
    if column == "timestamp":
        new: object = row["timestamp"].replace("03:04:07", "03:04:08")
    elif column == "tree_size":
        new = 10
    elif column == "signature":
        new = _flip_hex(row["signature"], 20)
    else:
        new = _flip_hex(row[column], 5)
    store.execute(f"UPDATE audit_heads SET {column} = ? WHERE tree_size = 9", (new,))  # noqa: S608
    report = signed.verify(_cert(pki))
    assert not report.ok
    assert report.bad_leaves() == []
    assert report.bad_heads() == [10 if column == "tree_size" else 9], report.problems


def test_deleted_leaf_is_reported(pki: Any, signed: AuditLog, store: Store) -> None:
    store.execute("DELETE FROM audit_leaves WHERE seq = 19")
    report = signed.verify(_cert(pki))
    assert not report.ok
    assert any(p.what == "log" for p in report.problems)
    assert report.bad_heads() == [20]


def test_wrong_certificate_fails_every_head(pki: Any, signed: AuditLog) -> None:
    report = signed.verify(pki.keys.certificate_der(Role.SEAL))
    assert report.bad_heads() == [4, 9, 20]
    assert all("another key" in p.message for p in report.problems)


def test_concurrent_appends_get_unique_contiguous_seqs(pki: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    store = open_store(path)
    log = AuditLog(store)
    seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(8)

    def writer(t: int) -> None:
        try:
            go.wait()
            mine = [log.append("t", f"thread-{t}", {"i": i}, T0) for i in range(40)]
            with lock:
                seqs.extend(mine)
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            store.close()  # this thread's connection

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sorted(seqs) == list(range(320))
    log.sign_head(pki.keys.signer(Role.AUDIT), T0)
    report = log.verify(_cert(pki))
    assert report.ok and report.leaves == 320 and report.latest is not None
    assert report.latest.tree_size == 320
    store.close()


def test_verify_100k_leaves_is_reasonably_fast(pki: Any, store: Store) -> None:
    import time

    log = AuditLog(store)
    with store.transaction():
        for i in range(100_000):
            log.append("bulk", "s", {"i": i}, T0)
    t = time.perf_counter()
    head = log.sign_head(pki.keys.signer(Role.AUDIT), T0)
    proof = log.inclusion(54_321, 100_000)
    assert len(proof) == merkle.inclusion_proof_size(54_321, 100_000)
    assert log.verify(_cert(pki)).ok
    assert head.tree_size == 100_000
    assert time.perf_counter() - t < 30


# --- signet-admin audit ----------------------------------------------------------------------------------------


@dataclass
class _Runtime:
    store: Store
    keys: Any
    clock: ManualClock

    def close(self) -> None:
        pass


@pytest.fixture
def admin(pki: Any, store: Store, monkeypatch: pytest.MonkeyPatch) -> Any:
    import server.admin

    rt = _Runtime(store, pki.keys, ManualClock(T0))
    monkeypatch.setattr(server.admin, "load_config", lambda path: object())
    monkeypatch.setattr(server.admin, "open_runtime", lambda cfg: rt)

    def run(*argv: str) -> int:
        return server.admin.main(["--config", "unused.toml", *argv])

    return run


def test_admin_audit_head_and_verify(admin: Any, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog(store)
    _fill(log, 3)
    assert admin("--json", "audit", "head") == 0
    head = json.loads(capsys.readouterr().out)
    assert head["tree_size"] == 3 and head["signed_now"] is True
    assert admin("--json", "audit", "head") == 0
    assert json.loads(capsys.readouterr().out)["signed_now"] is False
    assert admin("audit", "verify") == 0
    out = capsys.readouterr().out
    assert "verified: yes" in out and "leaves: 3" in out
    assert admin("--json", "audit", "verify") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    store.execute("UPDATE audit_leaves SET subject = 'forged' WHERE seq = 1")
    assert admin("audit", "verify") == 1
    captured = capsys.readouterr()
    assert "verified: NO" in captured.out and "problem: leaf 1:" in captured.out
    assert "did not verify" in captured.err
    assert admin("--json", "audit", "verify") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [p["ref"] for p in report["problems"]] == [1]
