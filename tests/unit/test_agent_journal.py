"""The journal: WAL + synchronous=FULL, one row per operation, group commit, durable before return."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

from agent.journal import Entry, Journal, read


def test_rows_are_durable_on_return_with_injected_time(tmp_path):
    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    j = Journal(tmp_path / "j.db", clock=lambda: t)
    j.record([Entry("sign_digest", "local", "serial1", "ab", "00" * 32, "digest-sha256")])
    # another connection sees the row before the journal is closed: it was committed
    rows = read(tmp_path / "j.db")
    assert rows == [{"id": 1, "time": "2026-01-02T03:04:05.000000+00:00", "caller": "local",
                     "operation": "sign_digest", "token_serial": "serial1", "key_id": "ab",
                     "document_sha256": "00" * 32, "format": "digest-sha256", "outcome": "ok",
                     "signed_digest": ""}]
    conn = sqlite3.connect(tmp_path / "j.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    j = Journal(tmp_path / "j.db")

    def writer(i):
        for k in range(50):
            j.record([Entry("sign_digest", f"c{i}", key_id=str(k)), Entry("sign_digest", f"c{i}", key_id=f"{k}b")])

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    j.close()
    rows = read(tmp_path / "j.db")
    assert len(rows) == 8 * 50 * 2
    assert [r["id"] for r in rows] == list(range(1, 801))


def test_a_write_failure_reaches_the_waiter(tmp_path):
    import pytest

    from agent.errors import JournalError

    j = Journal(tmp_path / "j.db")
    conn = sqlite3.connect(tmp_path / "j.db")
    conn.execute("DROP TABLE journal")  # the next insert fails inside the writer thread
    conn.commit()
    with pytest.raises(JournalError):
        j.record([Entry("sign_digest", "local")])
    j.close()


def test_batches_of_digests_keep_every_row_in_order(tmp_path):
    """record_digests: one row per signed digest, in order, across the 64-row statements and the remainder."""
    j = Journal(tmp_path / "j.db")
    tickets = [j.record_digests("sign_digest", "local", "s1", "k1", "digest-sha256",
                                [f"{n:02x}{i:062x}" for i in range(n)], wait=False) for n in (1, 64, 130, 7)]
    for t in tickets:
        t.wait()
    j.record([Entry("lock", "local", "s1")])
    j.close()
    rows = read(tmp_path / "j.db")
    expected = [f"{n:02x}{i:062x}" for n in (1, 64, 130, 7) for i in range(n)]
    assert [r["document_sha256"] for r in rows[:-1]] == expected
    assert [r["signed_digest"] for r in rows[:-1]] == expected  # the exact digest the token signed
    assert {(r["operation"], r["caller"], r["token_serial"], r["key_id"], r["format"], r["outcome"])
            for r in rows[:-1]} == {("sign_digest", "local", "s1", "k1", "digest-sha256", "ok")}
    assert rows[-1]["operation"] == "lock" and [r["id"] for r in rows] == list(range(1, len(expected) + 2))


def test_a_journal_written_before_the_digest_column_is_upgraded(tmp_path):
    conn = sqlite3.connect(tmp_path / "j.db")
    conn.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, time TEXT, caller TEXT, operation TEXT, "
                 "token_serial TEXT, key_id TEXT, document_sha256 TEXT, format TEXT, outcome TEXT)")
    conn.execute("INSERT INTO journal (time, caller, operation) VALUES ('t', 'local', 'unlock')")
    conn.commit()
    conn.close()
    j = Journal(tmp_path / "j.db")
    j.record([Entry("sign_pdf", "local", signed_digest="ab" * 32)])
    j.close()
    rows = read(tmp_path / "j.db")
    assert [r["signed_digest"] for r in rows] == ["", "ab" * 32]


def test_refusals_are_journalled_without_raising(tmp_path):
    j = Journal(tmp_path / "j.db")
    j.refusal("sign_digest", "local", "DIGESTS_NOT_ALLOWED", token_serial="s1", key_id="k1")
    j.close()
    (row,) = read(tmp_path / "j.db")
    assert (row["operation"], row["outcome"], row["key_id"]) == ("sign_digest", "DIGESTS_NOT_ALLOWED", "k1")


def test_overlapping_callers_share_commits_and_lose_nothing(tmp_path):
    """32 callers at once: every row is there, in fewer transactions (fsyncs) than calls."""
    j = Journal(tmp_path / "j.db")
    start = threading.Barrier(32)

    def caller(i: int) -> None:
        start.wait()
        for k in range(20):
            j.record([Entry("sign_digest", f"c{i}", key_id=str(k))])

    ts = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    commits = j.commits
    j.close()
    rows = read(tmp_path / "j.db")
    assert len(rows) == 32 * 20 and {(r["caller"], r["key_id"]) for r in rows} == {
        (f"c{i}", str(k)) for i in range(32) for k in range(20)}
    assert commits < 32 * 20


def test_rows_nobody_waits_for_are_committed_by_the_writer_and_on_close(tmp_path):
    j = Journal(tmp_path / "j.db")
    alone = j.record([Entry("sign_pdf", "local")], wait=False)
    alone.wait()  # the background writer committed it: no other caller came along to lead
    assert [r["operation"] for r in read(tmp_path / "j.db")] == ["sign_pdf"]
    for n in range(50):
        j.record([Entry("sign_detached", "local", key_id=str(n))], wait=False)
    j.close()  # drains what was handed over
    assert len(read(tmp_path / "j.db")) == 51


def test_after_a_disk_failure_the_next_write_succeeds(tmp_path, monkeypatch):
    import pytest

    from agent import journal
    from agent.errors import JournalError

    fault = tmp_path / "disk-full"
    monkeypatch.setenv(journal.FAULT_FILE_ENV, str(fault))
    j = Journal(tmp_path / "j.db")
    fault.touch()
    with pytest.raises(JournalError):
        j.record([Entry("sign_digest", "local", key_id="lost")])
    pending = j.record([Entry("sign_pdf", "local")], wait=False)
    with pytest.raises(JournalError):
        pending.wait()
    fault.unlink()
    j.record([Entry("sign_digest", "local", key_id="kept")])
    j.close()
    assert [r["key_id"] for r in read(tmp_path / "j.db")] == ["kept"]


def test_close_during_a_commit_with_unwaited_rows_handed_meanwhile_returns_and_keeps_them(tmp_path):
    """A leader is committing; a row nobody waits for arrives; close() starts. The old code waited for an
    idle signal that never came (the agent hung on SIGTERM) and would have dropped the row."""
    j = Journal(tmp_path / "j.db")
    real_write, release, writing = j._write, threading.Event(), threading.Event()

    def slow_write(rows):
        writing.set()
        assert release.wait(10)
        real_write(rows)

    j._write = slow_write  # type: ignore[method-assign]
    leader = threading.Thread(target=j.record, args=([Entry("sign_digest", "waits")],))
    leader.start()
    assert writing.wait(10)
    j.record([Entry("sign_digest", "does-not-wait")], wait=False)
    closer = threading.Thread(target=j.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive()  # it waits for the commit in flight
    release.set()
    leader.join(10)
    closer.join(10)
    assert not closer.is_alive(), "close() never returned"
    assert [r["caller"] for r in read(tmp_path / "j.db")] == ["waits", "does-not-wait"]
