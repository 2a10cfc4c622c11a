"""PostgreSQL's connection pool, full: a call that gets no connection in time is StoreBusy, which the API answers
UNAVAILABLE with a retry hint (never INTERNAL), and the store works again once a connection is free."""

from __future__ import annotations

import threading

import grpc
import pytest

from server.store import StoreBusy
from tests.conftest import shared_pg_cluster
from tests.fuzz.fakes import Aborted, FakeContext


@pytest.mark.slow
def test_a_full_pool_is_store_busy_and_unavailable_not_internal() -> None:
    from server.api.status import _mapped
    from server.store.postgres import PostgresStore

    store = PostgresStore(shared_pg_cluster().createdb("busy_pool"), max_size=1, pool_timeout=0.5)
    try:
        store.execute("CREATE TABLE t (x INTEGER)")
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.transaction():
                store.execute("INSERT INTO t (x) VALUES (1)")
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        with pytest.raises(StoreBusy, match="busy"):
            store.query_one("SELECT COUNT(*) AS n FROM t")

        with pytest.raises(Aborted) as e:
            _mapped("Test.Call", lambda: store.query_one("SELECT 1 AS one"), FakeContext())  # type: ignore[arg-type]
        assert e.value.code == grpc.StatusCode.UNAVAILABLE and "busy" in e.value.details
        release.set()
        holder.join(10)
        row = store.query_one("SELECT COUNT(*) AS n FROM t")
        assert row is not None and row["n"] == 1  # the held transaction committed; the pool serves again
    finally:
        store.close()
