"""The blind index: nothing searchable at rest, AND semantics, filters, orders, pages, remove and re-add."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.clock import to_text
from server.errors import InvalidArgument
from server.search import BlindIndex, EmptyQuery, Page, schema, tuning
from server.search import index as index_module
from server.search.terms import iter_terms
from server.store import Store, open_store
from tests.server_helpers import db_bytes

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "s.db"))


@pytest.fixture
def index(store: Store) -> BlindIndex:
    return BlindIndex(store, os.urandom(32))


def ids(page: Page) -> list[str]:
    return [cid for cid, _ in page.results]


def test_no_marker_at_rest_and_still_found(tmp_path: Path) -> None:
    db = tmp_path / "leak.db"
    store = open_store(str(db))
    key = os.urandom(32)
    index = BlindIndex(store, key)
    markers = ["Zanzibarine", "Quixotegarden", "verdigris", "obelisk", "翡翠宫殿", "欧阳娜娜", "Ёлкапалка"]
    index.add("org-a", "c-1", {
        "title": "Zanzibarine master agreement",
        "parties": "Quixotegarden Ltd and 欧阳娜娜",
        "tags": "Ёлкапалка",
        "text": "The verdigris obelisk stands in the garden. 甲方在翡翠宫殿签署合同。",
    }, ["person-quixotegarden", "person-欧阳娜娜"], "archived", T0)
    index.add("org-a", "c-2", {"title": "Other", "text": "nothing special here"}, ["person-x"], "archived", T0)
    assert Path(str(db) + "-wal").stat().st_size > 10_000  # not checkpointed yet: the rows are in the WAL
    snapshots = [db_bytes(db)]
    store.close()  # checkpoints into the main file
    snapshots.append(db_bytes(db))
    for data in snapshots:
        assert b"c-1" in data  # the contract id is there (it is what a search returns)
        for marker in markers:
            for form in {marker, marker.lower(), marker.upper(), *iter_terms(marker)}:
                for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                    assert form.encode(encoding) not in data, (form, encoding)
        for word in ("master", "garden", "stands"):  # ordinary words are not there either
            assert word.encode() not in data

    store = open_store(str(db))
    index = BlindIndex(store, key)
    for query in ("zanzibarine", "QUIXOTEGARDEN", "verdigris obelisk", "翡翠", "宫殿", "欧阳娜娜", "ёлкапалка",
                  "合同", "签署"):
        assert ids(index.search("org-a", query)) == ["c-1"], query
    assert ids(index.search("org-a", "obelisk", party="person-欧阳娜娜")) == ["c-1"]

    # another organisation, or another key, finds nothing
    assert index.search("org-b", "zanzibarine").total == 0
    assert index.search("org-b", "zanzibarine", party="person-quixotegarden").total == 0
    other = BlindIndex(store, os.urandom(32))
    assert other.search("org-a", "zanzibarine").total == 0
    assert other.search("org-a", "obelisk").total == 0


def test_organisations_are_apart(index: BlindIndex) -> None:
    index.add("org-a", "same-id", {"title": "alpha contract"}, ["p"], "archived", T0)
    index.add("org-b", "same-id", {"title": "beta contract"}, ["p"], "archived", T0)
    assert ids(index.search("org-a", "alpha")) == ["same-id"]
    assert index.search("org-a", "beta").total == 0
    assert index.search("org-b", "alpha").total == 0
    assert index.search("org-a", "contract", party="p").total == 1
    assert index.remove("org-b", "same-id")
    assert ids(index.search("org-a", "alpha")) == ["same-id"]
    assert index.search("org-b", "contract").total == 0
    assert index.term_hash("org-a", "title", "alpha") != index.term_hash("org-b", "title", "alpha")
    assert index.term_hash("org-a", "title", "alpha") != index.term_hash("org-a", "text", "alpha")


def test_and_semantics_and_cjk(index: BlindIndex) -> None:
    index.add("o", "c1", {"text": "supply of widgets"}, [], "archived", T0)
    index.add("o", "c2", {"text": "supply of gadgets"}, [], "archived", T0)
    index.add("o", "c3", {"title": "Widgets", "text": "lease"}, [], "archived", T0)
    index.add("o", "c4", {"parties": "张三 李四", "text": "张三签署合同"}, [], "archived", T0)
    assert set(ids(index.search("o", "supply"))) == {"c1", "c2"}
    assert ids(index.search("o", "supply widgets")) == ["c1"]
    assert ids(index.search("o", "widgets lease")) == ["c3"]  # terms may come from different fields
    assert index.search("o", "supply widgets lease").total == 0
    assert index.search("o", "supply unknownword").total == 0
    for query in ("合同", "签署", "张三", "张三签署合同", "李四"):
        assert ids(index.search("o", query)) == ["c4"], query
    assert index.search("o", "合同签署").total == 0  # bigram 同签 is not in the text
    with pytest.raises(EmptyQuery):
        index.search("o", " ,.; ")


def test_filters(index: BlindIndex) -> None:
    index.add("o", "c1", {"text": "lease"}, ["alice", "bob"], "archived", T0)
    index.add("o", "c2", {"text": "lease"}, ["bob"], "sealed", T0 + timedelta(days=10))
    index.add("o", "c3", {"text": "lease"}, ["carol"], "archived", T0 + timedelta(days=20))
    assert set(ids(index.search("o", "lease", party="bob"))) == {"c1", "c2"}
    assert ids(index.search("o", "lease", party="alice")) == ["c1"]
    assert index.search("o", "lease", party="nobody").total == 0
    assert set(ids(index.search("o", "lease", status="archived"))) == {"c1", "c3"}
    assert ids(index.search("o", "lease", date_from=T0 + timedelta(days=10))) in (["c2", "c3"], ["c3", "c2"])
    assert ids(index.search("o", "lease", date_to=T0 + timedelta(days=10))) == ["c1"]  # exclusive
    assert ids(index.search("o", "lease", date_from=T0 + timedelta(days=5), date_to=T0 + timedelta(days=15))) == [
        "c2"]
    assert ids(index.search("o", "lease", party="bob", status="archived", date_to=T0 + timedelta(days=1))) == [
        "c1"]
    assert index.search("o", "lease", party="carol", status="sealed").total == 0


def test_orders(index: BlindIndex) -> None:
    index.add("o", "in-text", {"text": "widget"}, [], "archived", T0 + timedelta(days=3))
    index.add("o", "in-title", {"title": "Widget", "text": "other"}, [], "archived", T0 + timedelta(days=1))
    index.add("o", "in-text-often", {"text": "widget widget widget"}, [], "archived", T0 + timedelta(days=2))
    index.add("o", "no", {"text": "nothing"}, [], "archived", T0 + timedelta(days=4))
    page = index.search("o", "widget")
    assert ids(page) == ["in-title", "in-text-often", "in-text"]  # title weight 4 > tf saturation of the text
    scores = [s for _, s in page.results]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert ids(index.search("o", "widget", order="date")) == ["in-text", "in-text-often", "in-title"]
    with pytest.raises(InvalidArgument):
        index.search("o", "widget", order="alphabetical")  # type: ignore[arg-type]


def test_pagination_is_stable(index: BlindIndex) -> None:
    rng = random.Random(3)
    for i in range(45):
        index.add("o", f"c{i:02d}", {"text": "common " * rng.randint(1, 3) + ("rare" if i % 3 == 0 else "")},
                  [], "archived", T0 + timedelta(hours=rng.randint(0, 5)))  # many equal dates and scores
    for order in ("relevance", "date"):
        full = index.search("o", "common", order=order, limit=100)
        assert full.total == 45 and full.next is None
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = index.search("o", "common", order=order, limit=10, offset=offset)
            assert page.total == 45
            seen += ids(page)
            offset = page.next
        assert seen == ids(full)
        assert index.search("o", "common", order=order, limit=10, offset=40) == Page(
            full.results[40:], 45, None)
    past = index.search("o", "common rare", offset=100)
    assert past.results == [] and past.total == 15 and past.next is None
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        with pytest.raises(InvalidArgument):
            index.search("o", "common", **bad)  # type: ignore[arg-type]


def test_remove(index: BlindIndex, store: Store) -> None:
    index.add("o", "c1", {"title": "unique words", "text": "shared"}, ["p"], "archived", T0)
    index.add("o", "c2", {"text": "shared"}, ["p"], "archived", T0)
    assert index.remove("o", "c1")
    assert not index.remove("o", "c1") and not index.remove("o", "never") and not index.remove("elsewhere", "c2")
    assert index.search("o", "unique").total == 0
    assert ids(index.search("o", "shared", party="p")) == ["c2"]
    # nothing of c1 is left behind: its terms' document frequencies are gone with it
    assert store.query_one("SELECT COUNT(*) AS n FROM search_terms")["n"] == 1  # type: ignore[index]
    assert store.query_one("SELECT COUNT(*) AS n FROM search_parties")["n"] == 1  # type: ignore[index]
    assert store.query_one("SELECT docs FROM search_orgs WHERE org = 'o'")["docs"] == 1  # type: ignore[index]
    # nor in the bitmaps: one set per term and party of c2, one per facet (its status, its month)
    assert store.query_one("SELECT COUNT(*) AS n FROM search_bits")["n"] == 2  # type: ignore[index]
    assert store.query_one("SELECT COUNT(*) AS n FROM search_facets")["n"] == 2  # type: ignore[index]


def test_re_add_replaces(tmp_path: Path) -> None:
    key = os.urandom(32)
    index = BlindIndex(open_store(str(tmp_path / "a.db")), key)
    index.add("o", "c1", {"title": "alpha", "text": "one two"}, ["p1"], "draft", T0)
    index.add("o", "c2", {"text": "two"}, [], "archived", T0)
    index.add("o", "c1", {"title": "beta", "text": "two three"}, ["p2"], "archived", T0 + timedelta(days=1))
    index.add("o", "c1", {"title": "beta", "text": "two three"}, ["p2"], "archived", T0 + timedelta(days=1))
    assert index.search("o", "alpha").total == 0 and index.search("o", "one").total == 0
    assert ids(index.search("o", "beta three", party="p2", status="archived")) == ["c1"]
    assert index.search("o", "two", party="p1").total == 0
    # the same state as indexing only the final versions: same scores
    fresh = BlindIndex(open_store(str(tmp_path / "b.db")), key)
    fresh.add("o", "c2", {"text": "two"}, [], "archived", T0)
    fresh.add("o", "c1", {"title": "beta", "text": "two three"}, ["p2"], "archived", T0 + timedelta(days=1))
    assert sorted(index.search("o", "two").results) == sorted(fresh.search("o", "two").results)


def test_bad_input(index: BlindIndex, store: Store) -> None:
    with pytest.raises(InvalidArgument):
        index.add("o", "c", {"body": "x"}, [], "archived", T0)
    with pytest.raises(ValueError, match="naive"):
        index.add("o", "c", {"text": "x"}, [], "archived", datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(store, b"short")
    assert "key" not in repr(index) or repr(index).count("\\x") == 0
    assert index.search("unknown-org", "anything") == Page([], 0, None)


@pytest.mark.parametrize("seek_cost", [0, 1, 10**9])  # always seek from the candidates, the default, always scan
def test_matches_a_reference(index: BlindIndex, monkeypatch: pytest.MonkeyPatch, seek_cost: int) -> None:
    monkeypatch.setattr(tuning, "SEEK_COST", seek_cost)
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(30)]
    weights = [1 / (i + 1) for i in range(30)]
    docs = {}
    for i in range(90):
        words = {"title": rng.choices(vocab, weights, k=2), "text": rng.choices(vocab, weights, k=12)}
        meta = (rng.sample(["p1", "p2", "p3", "p4"], 2), rng.choice(["archived", "sealed"]),
                T0 + timedelta(days=rng.randrange(100)))
        docs[f"c{i:03d}"] = (words, meta)
        index.add("o", f"c{i:03d}", {k: " ".join(v) for k, v in words.items()}, *meta)
    for _ in range(60):
        query = rng.sample(vocab[:20], rng.randint(1, 3))
        party = rng.choice([None, "p1", "p4"])
        status = rng.choice([None, "sealed"])
        date_from = rng.choice([None, T0 + timedelta(days=50)])
        expected = [(meta[2], cid) for cid, (words, meta) in docs.items()
                    if all(any(q in ws for ws in words.values()) for q in query)
                    and (party is None or party in meta[0]) and (status is None or meta[1] == status)
                    and (date_from is None or meta[2] >= date_from)]
        page = index.search("o", " ".join(query), party=party, status=status, date_from=date_from, limit=100)
        assert page.total == len(expected) and sorted(ids(page)) == sorted(cid for _, cid in expected)
        dated = index.search("o", " ".join(query), party=party, status=status, date_from=date_from, order="date",
                             limit=100)
        assert [d for d, _ in sorted(expected, reverse=True)] == [docs[cid][1][2] for cid in ids(dated)]


def test_no_sqlite_outside_the_store() -> None:
    root = Path(index_module.__file__).parent
    for source in root.glob("*.py"):
        text = source.read_text()
        assert "import sqlite" not in text and "sqlite_utils" not in text, source


def _reference_page(index: BlindIndex, org: str, query: str, *, party: str | None = None, status: str | None = None,
                    date_from: datetime | None = None, date_to: datetime | None = None, order: str = "relevance",
                    limit: int, offset: int) -> Page:
    """The page as the single scoring statement of the first version answered it (every match scored, sorted)."""
    known = index._org_no(org, create=False)
    assert known is not None
    org_no, n_docs = known
    qterms = index._query_terms(org, org_no, n_docs, query.split())
    if qterms is None:
        return Page([], 0, None)
    q_rows = [(h, i, coef) for i, q in enumerate(qterms) for h, coef in q.hashes]
    params: list[object] = [v for row in q_rows for v in row]
    sql = (f"WITH q (term, qi, coef) AS (VALUES {', '.join(['(?, ?, ?)'] * len(q_rows))}), "  # noqa: S608
           "m AS (SELECT p.doc AS doc, SUM(q.coef * p.tf * ? / (p.tf + ?)) AS score, COUNT(DISTINCT q.qi) AS n "
           "FROM q JOIN search_postings p ON p.org = ? AND p.term = q.term GROUP BY p.doc) "
           "SELECT d.contract_id AS cid, m.score AS score FROM m JOIN search_docs d ON d.doc = m.doc AND d.org = ? "
           "WHERE m.n = ?")
    params += [index_module.K1 + 1, index_module.K1, org_no, org_no, len(qterms)]
    if status is not None:
        sql += " AND d.status = ?"
        params.append(status)
    if date_from is not None:
        sql += " AND d.date >= ?"
        params.append(to_text(date_from))
    if date_to is not None:
        sql += " AND d.date < ?"
        params.append(to_text(date_to))
    if party is not None:
        sql += " AND m.doc IN (SELECT doc FROM search_parties WHERE org = ? AND party = ?)"
        params += [org_no, index.party_hash(org, party)]
    sql += " ORDER BY " + ("m.score DESC, m.doc" if order == "relevance" else "d.date DESC, m.doc DESC")
    rows = [(str(r["cid"]), float(r["score"])) for r in index.store.query(sql, params)]
    page = rows[offset:offset + limit]
    nxt = offset + len(page) if page and offset + len(page) < len(rows) else None
    return Page(page, len(rows), nxt)


@pytest.mark.parametrize("plans", ["default", "early", "scan", "bits", "bits-classes"])
def test_fast_plans_match_the_full_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plans: str) -> None:
    """Early-terminating plans (date walk, top-k by tf, counts by probes) give the very pages of a full scan."""
    settings: dict[str, dict[str, float]] = {
        "default": {},
        # take the early-terminating plans whenever they apply, in small scoring batches
        "early": {"TOP_MIN": 0, "TOP_DENSE": 0, "WALK_COST": 0, "TOP_BUDGET": 1e9, "BATCH": 7},
        # give up the top-k pass at once; never walk by date; no bitmaps
        "scan": {"TOP_BUDGET": 0, "WALK_COST": 10**9, "BITS_MIN": 10**9},
        # the bitmap plan for every AND and filter, its threshold pass for every class
        "bits": {"BITS_MIN": 0, "SCORE_ALL": 0, "CLASS_ALL": 0, "BATCH": 7},
        # the bitmap plan, every class scored whole
        "bits-classes": {"BITS_MIN": 0, "SCORE_ALL": 0, "CLASS_ALL": 10**9},
    }
    for name, value in settings[plans].items():
        monkeypatch.setattr(tuning, name, value)
    store = open_store(str(tmp_path / "r.db"))
    index = BlindIndex(store, os.urandom(32))
    rng = random.Random(2024)
    vocab = [f"w{i}" for i in range(60)]
    # w0..w3 are in most contracts; zz too, in the text only; yy in most titles (all tied) and a few texts
    weights = [1 / (i + 1) ** 1.1 for i in range(60)]
    people = [f"p{i}" for i in range(15)]
    with store.transaction():
        for i in range(2500):
            text = [*rng.choices(vocab, weights, k=rng.randint(3, 40)), *["zz"] * rng.choice([0, 0, 1, 2, 3]),
                    *["yy"] * (rng.random() < 0.004)]
            title = [*rng.choices(vocab, weights, k=rng.randint(1, 4)), *["yy"] * (rng.random() < 0.8)]
            index.add("o", f"c{i:04d}", {
                "title": " ".join(title),
                "tags": " ".join(rng.choices(vocab[:8], k=rng.randint(0, 2))),
                "text": " ".join(text)},
                rng.sample(people, rng.randint(1, 3)), rng.choice(["archived", "sealed", "draft"]),
                T0 + timedelta(days=rng.randrange(300)))  # many contracts share a date
        index.add("o", "c0001", {"text": "w0 w1 w0"}, ["p1"], "archived", T0)  # re-indexed: a gap in the numbers
        index.add("other", "x", {"text": "w0 w1 w2"}, ["p1"], "archived", T0)
    def check(query: str, kwargs: dict[str, Any], limit: int, offset: int) -> None:
        got = index.search("o", query, limit=limit, offset=offset, **kwargs)
        want = _reference_page(index, "o", query, limit=limit, offset=offset, **kwargs)
        context = (query, kwargs, limit, offset)
        assert (ids(got), got.total, got.next) == (ids(want), want.total, want.next), context
        assert [s for _, s in got.results] == pytest.approx([s for _, s in want.results], rel=1e-12), context

    for word in [*vocab[:6], "zz", "yy"]:  # one common word, no filter: the top-k plans
        for order in ("relevance", "date"):
            for limit, offset in ((1, 0), (20, 0), (20, 20), (7, 500), (20, 3000)):
                check(word, {"order": order}, limit, offset)
    for _ in range(120):
        query = " ".join(rng.sample([*vocab[:6], "zz", "yy"] if rng.random() < 0.7 else vocab[:30], rng.randint(1, 3)))
        kwargs = {"party": rng.choice([None, None, None, "p3"]),
                  "status": rng.choice([None, None, "sealed"]),
                  "date_from": rng.choice([None, None, T0 + timedelta(days=100)]),
                  "date_to": rng.choice([None, None, T0 + timedelta(days=200)]),
                  "order": rng.choice(["relevance", "date"])}
        limit = rng.choice([1, 7, 20])
        for offset in (0, limit, rng.randrange(0, 1500), 3000):
            check(query, kwargs, limit, offset)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_one_term_in_several_fields_by_classes(new_store: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """One word under several fields, no filter, best first: the bitmap plan's classes, each read in its one open
    hash's tf order (the others held once) or, with none open, by number; the very pages of a full scan."""
    for name, value in {"TOP_MIN": 0, "TOP_DENSE": 0, "BITS_MIN": 0, "SCORE_ALL": 0, "CLASS_ALL": 0}.items():
        monkeypatch.setattr(tuning, name, value)
    calls: list[int] = []
    by_tf = BlindIndex._class_by_tf

    def spy(self: BlindIndex, *args: Any) -> None:
        calls.append(sum(more for _, _, more in args[2]))
        by_tf(self, *args)

    def no_scan(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("one term in several fields should take the bitmap plan")

    monkeypatch.setattr(BlindIndex, "_class_by_tf", spy)
    monkeypatch.setattr(BlindIndex, "_by_score", no_scan)
    store = new_store(kind)
    index = BlindIndex(store, os.urandom(32))
    rng = random.Random(11)
    with store.transaction():
        for i in range(400):
            # kw: in most texts (tf 0-6), in titles once (a few twice), in some tags; tt: in titles and tags once
            title = ["kw"] * rng.choice([0, 1, 1, 1, 2] if i % 50 == 0 else [0, 1, 1]) + ["tt"] * (rng.random() < 0.6)
            tags = ["kw"] * (rng.random() < 0.3) + ["tt"] * (rng.random() < 0.5)
            index.add("o", f"c{i:03d}", {"title": " ".join(["deed", *title]), "tags": " ".join(tags),
                                          "text": " ".join(["x"] + ["kw"] * rng.choice([0, 1, 2, 3, 4, 6]))},
                      ["p1"], "archived", T0 + timedelta(days=i))
    for word in ("kw", "tt"):
        for limit, offset in ((1, 0), (20, 0), (7, 30), (20, 100)):
            calls.clear()
            got = index.search("o", word, limit=limit, offset=offset)
            want = _reference_page(index, "o", word, limit=limit, offset=offset)
            assert calls, (word, limit, offset)
            assert (got.total, got.next) == (want.total, want.next)
            assert [s for _, s in got.results] == pytest.approx([s for _, s in want.results], rel=1e-12)
            if kind == "sqlite":  # (PostgreSQL sums in no fixed order: equal scores may differ in the last bit)
                assert ids(got) == ids(want), (word, limit, offset)
        assert word != "kw" or max(calls) == 1  # a class read in the text's tf order
        assert word != "tt" or min(calls) == 0  # titles and tags held once: every member ties


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_bitmaps_migrate_and_follow_writes(new_store: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Migration 3 builds the bitmaps from the rows of version 2 (in pages); adds, re-adds and removes keep them
    equal to the rows; the bitmap plan answers as the scan does, on SQLite and PostgreSQL."""
    from server.search import bitmaps

    store = new_store(kind)
    key = os.urandom(32)
    index = BlindIndex(store, key)
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(12)]
    with store.transaction():
        for i in range(300):
            index.add("o", f"c{i}", {"title": rng.choice(vocab), "text": " ".join(rng.choices(vocab, k=8))},
                      rng.sample(["p1", "p2", "p3"], 2), rng.choice(["archived", "sealed"]),
                      T0 + timedelta(days=rng.randrange(120), hours=rng.randrange(24)))
        index.add("other", "x", {"text": "w1 w2"}, ["p1"], "archived", T0)
    for i in range(0, 300, 7):
        index.remove("o", f"c{i}")
    index.add("o", "c1", {"text": "w1 w2 w3"}, ["p3"], "sealed", T0 + timedelta(days=40))

    def stored() -> tuple[dict[Any, list[int]], dict[Any, list[int]]]:
        out: list[dict[Any, list[int]]] = []
        for table, column in (("search_bits", "term"), ("search_facets", "facet")):
            sets: dict[Any, bitmaps.Bits] = {}
            for r in store.query(f"SELECT org, {column} AS k, block, bits FROM {table}"):  # noqa: S608
                sets.setdefault((r["org"], r["k"]), {})[int(r["block"])] = bitmaps.decode(bytes(r["bits"]))
            out.append({k: bitmaps.members(v) for k, v in sets.items()})
        return out[0], out[1]

    def queries() -> list[Page]:
        return [index.search("o", q, **kw) for q in ("w1 w2", "w3", "w1 w4 w5") for kw in (
            {}, {"order": "date"}, {"status": "sealed"}, {"party": "p2", "order": "date"},
            {"date_from": T0 + timedelta(days=31, hours=5), "date_to": T0 + timedelta(days=95)},
            {"date_from": T0 + timedelta(days=59)}, {"date_to": T0 + timedelta(days=10, hours=3), "limit": 3})]

    def canon(page: Page) -> list[tuple[float, str]]:  # the page by rounded score, its last tie group left out
        last = round(page.results[-1][1], 9)
        return sorted((-round(s, 9), c) for c, s in page.results if page.next is None or round(s, 9) != last)

    rows: dict[Any, list[int]] = {}
    for table, column in (("search_postings", "term"), ("search_parties", "party")):
        for r in store.query(f"SELECT org, {column} AS k, doc FROM {table} ORDER BY doc"):  # noqa: S608
            rows.setdefault((r["org"], r["k"]), []).append(int(r["doc"]))
    terms, facets = stored()
    assert terms == rows
    assert sum(len(v) for v in facets.values()) == 2 * store.query_one("SELECT COUNT(*) AS n FROM search_docs")["n"]
    monkeypatch.setattr(tuning, "BITS_MIN", 0)
    with_bits = queries()
    monkeypatch.setattr(tuning, "BITS_MIN", 10**9)
    for got, want in zip(queries(), with_bits, strict=True):
        # PostgreSQL sums a contract's parts in no fixed order: equal scores may differ in the last bit, and such
        # ties come in either order (SQLite: the very same pages, see test_fast_plans_match_the_full_scan)
        assert (got.total, got.next, len(got.results)) == (want.total, want.next, len(want.results))
        assert [s for _, s in got.results] == pytest.approx([s for _, s in want.results], rel=1e-12)
        if want.results and want.results[0][1] != want.results[-1][1]:
            assert canon(got) == canon(want)
    # back to version 2, then migrated again in small pages
    store.execute("DROP TABLE search_bits")
    store.execute("DROP TABLE search_facets")
    store.execute("UPDATE schema_versions SET version = 2 WHERE component = 'search'")
    monkeypatch.setattr(schema, "MIGRATE_PAGE", 17)
    index = BlindIndex(store, key)
    assert stored() == (terms, facets)
    monkeypatch.setattr(tuning, "BITS_MIN", 0)
    assert queries() == with_bits
