"""The Store contract, one suite for both implementations (server/store/sqlite.py, server/store/postgres.py):
every method, transactions (commit, rollback, re-entrance, isolation), concurrent writers, constraint errors,
migrations, sealed fields, byte-wise text order and durability settings.  PostgreSQL runs in a throwaway
cluster started for the session (scripts/pgcluster.py)."""

from __future__ import annotations

import threading

import pytest

from server.sealing import AesGcmBox, SealingError
from server.store import FieldSealer, IntegrityError, Sealed, StoreError
from tests.conftest import STORE_KINDS


@pytest.fixture(params=STORE_KINDS)
def store(request, new_store):
    s = new_store(request.param)
    s.kind = request.param
    s.execute("CREATE TABLE parent (id TEXT PRIMARY KEY, n INTEGER NOT NULL, data BLOB, x REAL)")
    s.execute("CREATE TABLE child (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parent (id))")
    s.execute("CREATE TABLE counted (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    return s


def test_insert_query_and_types_round_trip(store) -> None:
    store.insert("parent", {"id": "a", "n": 2**40, "data": b"\x00\xff" * 3, "x": 1.25})
    store.insert("parent", {"id": "b", "n": -1, "data": None, "x": None})
    assert store.query("SELECT id, n, data, x FROM parent ORDER BY id") == [
        {"id": "a", "n": 2**40, "data": b"\x00\xff" * 3, "x": 1.25},
        {"id": "b", "n": -1, "data": None, "x": None}]
    assert store.query_one("SELECT n FROM parent WHERE id = ?", ("b",)) == {"n": -1}
    assert store.query_one("SELECT n FROM parent WHERE id = ?", ("zz",)) is None
    assert store.execute("UPDATE parent SET n = n + 1 WHERE n > ?", (0,)) == 1
    assert store.execute("DELETE FROM parent WHERE id = ?", ("nothing",)) == 0


def test_insert_returns_the_id_an_integer_primary_key_assigned(store) -> None:
    first = store.insert("counted", {"name": "one"})
    second = store.insert("counted", {"name": "two"})
    assert first >= 1 and second == first + 1
    assert store.query_one("SELECT name FROM counted WHERE id = ?", (second,)) == {"name": "two"}
    assert store.insert("counted", {"id": 100, "name": "explicit"}) in (0, 100)
    assert store.query_one("SELECT id FROM counted WHERE name = ?", ("explicit",)) == {"id": 100}


def test_percent_and_like_patterns_are_literal_sql(store) -> None:
    store.insert("counted", {"name": "envelope.sent"})
    store.insert("counted", {"name": "100% sure"})
    assert [r["name"] for r in store.query("SELECT name FROM counted WHERE name LIKE 'envelope.%' ORDER BY name")] \
        == ["envelope.sent"]
    assert store.query_one("SELECT name FROM counted WHERE name = ?", ("100% sure",)) == {"name": "100% sure"}


def test_text_sorts_byte_wise(store) -> None:
    for name in ("b", "B", "a", "~", "2030-01-01", "é"):
        store.insert("counted", {"name": name})
    names = [r["name"] for r in store.query("SELECT name FROM counted ORDER BY name")]
    assert names == sorted(names, key=lambda s: s.encode())  # "~" after every date: the search's open range


def test_constraint_violations_are_integrity_errors(store) -> None:
    store.insert("parent", {"id": "a", "n": 1})
    with pytest.raises(IntegrityError):
        store.insert("parent", {"id": "a", "n": 2})
    with pytest.raises(IntegrityError):
        store.insert("child", {"id": "c", "parent_id": "missing"})
    with pytest.raises(IntegrityError):
        store.execute("INSERT INTO parent (id, n) VALUES (?, ?)", ("b", None))
    with pytest.raises(StoreError):
        store.query("SELECT nope FROM parent")
    assert store.query("SELECT id FROM parent") == [{"id": "a"}]  # usable after every error


def test_a_transaction_commits_together_or_not_at_all_and_nests(store) -> None:
    with store.transaction():
        store.insert("parent", {"id": "a", "n": 1})
        with store.transaction():  # re-entrant: part of the outer one
            store.insert("parent", {"id": "b", "n": 2})
    assert len(store.query("SELECT id FROM parent")) == 2
    with pytest.raises(RuntimeError), store.transaction():
        store.insert("parent", {"id": "c", "n": 3})
        with store.transaction():
            store.insert("parent", {"id": "d", "n": 4})
        raise RuntimeError("after the inner block: everything goes")
    assert sorted(r["id"] for r in store.query("SELECT id FROM parent")) == ["a", "b"]
    with pytest.raises(IntegrityError), store.transaction():
        store.insert("parent", {"id": "e", "n": 5})
        store.insert("parent", {"id": "a", "n": 6})
    assert store.query_one("SELECT id FROM parent WHERE id = 'e'") is None


def test_uncommitted_writes_are_invisible_to_other_threads(store) -> None:
    inside, release, seen = threading.Event(), threading.Event(), []

    def writer() -> None:
        with store.transaction():
            store.insert("parent", {"id": "w", "n": 1})
            inside.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(30)
    seen.append(store.query_one("SELECT id FROM parent WHERE id = 'w'"))
    release.set()
    t.join(30)
    assert seen == [None]
    assert store.query_one("SELECT id FROM parent WHERE id = 'w'") == {"id": "w"}


def test_concurrent_writers_allocating_max_plus_one_never_collide(store) -> None:
    """The envelope events' id allocation (MAX(id) + 1 inside the writing transaction) from 4 threads."""
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(25):
                with store.transaction():
                    row = store.query_one("SELECT MAX(n) AS last FROM parent")
                    nxt = int(row["last"]) + 1 if row and row["last"] is not None else 1
                    store.insert("parent", {"id": f"{k}-{i}", "n": nxt})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(r["n"] for r in store.query("SELECT n FROM parent")) == list(range(1, 101))


def test_migrations_apply_once_in_order_and_a_newer_schema_is_refused(store) -> None:
    calls: list[int] = []

    def v1(s) -> None:
        calls.append(1)
        s.execute("CREATE TABLE m (id TEXT PRIMARY KEY)")

    def v2(s) -> None:
        calls.append(2)
        s.execute("ALTER TABLE m ADD COLUMN size INTEGER NOT NULL DEFAULT 0")

    assert store.migrate("comp", [v1]) == 1
    assert store.migrate("comp", [v1, v2]) == 2
    assert store.migrate("comp", [v1, v2]) == 2
    assert calls == [1, 2]
    store.insert("m", {"id": "x", "size": 2**35})
    with pytest.raises(StoreError, match="newer than this program"):
        store.migrate("comp", [v1])


def test_sealed_fields_are_ciphertext_in_the_database_and_text_when_read(store) -> None:
    store.attach_field_sealer(FieldSealer(AesGcmBox.generate()))
    store.insert("parent", {"id": "s", "n": 1, "data": Sealed(b"\x01secret")})
    store.execute("UPDATE parent SET id = ? WHERE id = ?", (Sealed("Quokka title"), "s"))
    assert store.query("SELECT id, data FROM parent") == [{"id": "Quokka title", "data": b"\x01secret"}]
    raw = store.query_one("SELECT length(id) AS n FROM parent")
    assert raw is not None and raw["n"] > len("Quokka title") + 30  # prefix, nonce, tag
    store.attach_field_sealer(FieldSealer(AesGcmBox.generate()))
    with pytest.raises(SealingError):
        store.query("SELECT id FROM parent")


def test_commits_are_durable(store) -> None:
    if store.kind == "sqlite":
        assert store.query_one("PRAGMA synchronous") == {"synchronous": 2}  # FULL
        assert store.query_one("PRAGMA journal_mode") == {"journal_mode": "wal"}
    else:
        assert store.query_one("SHOW synchronous_commit") == {"synchronous_commit": "on"}
        assert store.query_one("SHOW fsync") == {"fsync": "on"}


def test_one_process_at_a_time_runs_the_background_work(store) -> None:
    """try_lead: SQLite has one process, which always leads; on PostgreSQL one store (process) of several holds
    the leadership until it goes, then another takes over."""
    import time

    from tests.conftest import reopen

    if store.kind == "sqlite":
        assert store.try_lead() and store.try_lead()
        return
    other = reopen(store)
    try:
        assert store.try_lead() and store.try_lead()
        assert not other.try_lead()
        store.close()  # the leader's process ends: its session lock goes with its connection
        deadline = time.monotonic() + 10
        while not other.try_lead():
            assert time.monotonic() < deadline, "nobody took over the background work"
            time.sleep(0.2)
    finally:
        other.close()
