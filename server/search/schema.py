"""What the blind index stores (the ``search`` component's migrations) and the writes of its bitmaps.

Per organisation a number and its document count; per contract a number, its contract id, status and date; per
(term hash, contract) the term frequency; per term hash its document frequency; per (party hash, contract) one row;
per term or party hash, and per status and month (the *facets*), the set of its contracts as blocked bitmaps
(:mod:`.bitmaps`: contract numbers only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..store import Store
from . import bitmaps

CHUNK = 200  # rows per multi-row INSERT (4 parameters each: well under every driver's limit)
MIGRATE_PAGE = 50_000  # postings per read while migration 3 fills the bitmaps


def marks(n: int) -> str:
    """``n`` SQL parameter marks, comma-separated."""
    return ", ".join("?" * n)


def facets_of(status: str, date: str) -> tuple[str, str]:
    """The facets a contract is filed under in ``search_facets``: its status and the month of its date."""
    return "s" + status, "m" + date[:7]


def write_bits(store: Store, table: str, column: str, org_no: int, sets: Mapping[Any, bitmaps.Bits], *,
                merge: bool) -> None:
    """Store ``sets`` (key -> blocks) in ``table``: the blocks given replace the stored ones, or are added to them
    with ``merge``; an empty block given deletes the stored one."""
    blocks = [(key, block, word) for key, bits in sets.items() for block, word in bits.items()]
    if merge:
        keyed: dict[tuple[Any, int], int] = {(key, block): word for key, block, word in blocks}
        for key in sets:
            for r in store.query(f"SELECT block, bits FROM {table} WHERE org = ? AND {column} = ?",  # noqa: S608
                                 (org_no, key)):
                if (key, int(r["block"])) in keyed:
                    keyed[(key, int(r["block"]))] |= bitmaps.decode(bytes(r["bits"]))
        blocks = [(key, block, word) for (key, block), word in keyed.items()]
    _put_blocks(store, table, column, org_no,
                [(key, block, bitmaps.encode(word)) for key, block, word in blocks if word],
                [(key, block) for key, block, word in blocks if not word])


def mark(store: Store, table: str, column: str, org_no: int, keys: Sequence[Any], doc: int, *, on: bool) -> None:
    """Add ``doc`` to (or take it out of) the sets of ``keys``."""
    block, offset = doc >> bitmaps.SHIFT, doc & bitmaps.MASK
    stored: dict[Any, bytes] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i:i + CHUNK]
        stored.update((r["k"], bytes(r["bits"])) for r in store.query(
            f"SELECT {column} AS k, bits FROM {table} WHERE org = ? AND block = ? AND {column} IN ({marks(len(chunk))})",  # noqa: S608, E501
            [org_no, block, *chunk]))
    if on:
        kept = [(key, bitmaps.with_member(stored.get(key), offset)) for key in keys]
        gone = []
    else:
        after = [(key, bitmaps.without_member(stored[key], offset)) for key in keys if key in stored]
        kept = [(key, blob) for key, blob in after if blob is not None]
        gone = [key for key, blob in after if blob is None]
    _put_blocks(store, table, column, org_no, [(key, block, blob) for key, blob in kept],
                [(key, block) for key in gone])


def _put_blocks(store: Store, table: str, column: str, org_no: int, kept: Sequence[tuple[Any, int, bytes]],
                gone: Sequence[tuple[Any, int]]) -> None:
    """Write the encoded blocks ``kept`` (key, block, bits) over the stored ones; delete the blocks ``gone``."""
    for key, block in gone:
        store.execute(f"DELETE FROM {table} WHERE org = ? AND {column} = ? AND block = ?", (org_no, key, block))  # noqa: S608
    for i in range(0, len(kept), CHUNK):
        chunk = kept[i:i + CHUNK]
        store.execute(
            f"INSERT INTO {table} (org, {column}, block, bits) VALUES {', '.join(['(?, ?, ?, ?)'] * len(chunk))} "  # noqa: S608
            f"ON CONFLICT (org, {column}, block) DO UPDATE SET bits = excluded.bits",
            [v for key, block, blob in chunk for v in (org_no, key, block, blob)])


def _v1(store: Store) -> None:
    store.execute("CREATE TABLE search_orgs (id INTEGER PRIMARY KEY, org TEXT NOT NULL UNIQUE, "
                  "docs INTEGER NOT NULL)")
    store.execute("CREATE TABLE search_docs (doc INTEGER PRIMARY KEY, org INTEGER NOT NULL, "
                  "contract_id TEXT NOT NULL, status TEXT NOT NULL, date TEXT NOT NULL)")
    store.execute("CREATE UNIQUE INDEX search_docs_contract ON search_docs (org, contract_id)")
    store.execute("CREATE INDEX search_docs_date ON search_docs (org, date, doc)")
    store.execute("CREATE TABLE search_postings (org INTEGER NOT NULL, term BIGINT NOT NULL, "
                  "doc INTEGER NOT NULL, tf INTEGER NOT NULL)")
    store.execute("CREATE UNIQUE INDEX search_postings_term ON search_postings (org, term, doc, tf)")
    store.execute("CREATE INDEX search_postings_doc ON search_postings (doc)")
    store.execute("CREATE TABLE search_terms (org INTEGER NOT NULL, term BIGINT NOT NULL, df INTEGER NOT NULL, "
                  "PRIMARY KEY (org, term))")
    store.execute("CREATE TABLE search_parties (org INTEGER NOT NULL, party BIGINT NOT NULL, "
                  "doc INTEGER NOT NULL)")
    store.execute("CREATE UNIQUE INDEX search_parties_party ON search_parties (org, party, doc)")
    store.execute("CREATE INDEX search_parties_doc ON search_parties (doc)")


def _v2(store: Store) -> None:
    # the postings of a term best first (one field's score grows with tf; ties by contract): lets a relevance
    # query stop after the first pages instead of scoring every posting
    store.execute("CREATE INDEX search_postings_tf ON search_postings (org, term, tf DESC, doc)")


def _v3(store: Store) -> None:
    # each term's, party's, status's and month's contracts as blocked bitmaps (see .bitmaps): an AND of common
    # words is intersected, counted and filtered without reading its postings
    store.execute("CREATE TABLE search_bits (org INTEGER NOT NULL, term BIGINT NOT NULL, block INTEGER NOT NULL, "
                  "bits BLOB NOT NULL, PRIMARY KEY (org, term, block))")
    store.execute("CREATE TABLE search_facets (org INTEGER NOT NULL, facet TEXT NOT NULL, block INTEGER NOT NULL, "
                  "bits BLOB NOT NULL, PRIMARY KEY (org, facet, block))")
    for org in [int(r["id"]) for r in store.query("SELECT id FROM search_orgs ORDER BY id")]:
        for table, column in (("search_postings", "term"), ("search_parties", "party")):
            last: tuple[int, int] | None = None
            while True:
                after = "" if last is None else f" AND ({column}, doc) > (?, ?)"  # a range of the index, not a scan
                rows = store.query(
                    f"SELECT {column} AS k, doc FROM {table} WHERE org = ?{after} ORDER BY {column}, doc LIMIT ?",  # noqa: S608
                    [org, *(() if last is None else last), MIGRATE_PAGE])
                sets: dict[int, list[int]] = {}
                for r in rows:
                    sets.setdefault(int(r["k"]), []).append(int(r["doc"]))
                write_bits(store, "search_bits", "term", org,
                            {k: bitmaps.from_docs(docs) for k, docs in sets.items()}, merge=True)
                if len(rows) < MIGRATE_PAGE:
                    break
                last = (int(rows[-1]["k"]), int(rows[-1]["doc"]))
        facets: dict[str, list[int]] = {}
        for r in store.query("SELECT doc, status, date FROM search_docs WHERE org = ?", (org,)):
            for f in facets_of(str(r["status"]), str(r["date"])):
                facets.setdefault(f, []).append(int(r["doc"]))
        write_bits(store, "search_facets", "facet", org, {f: bitmaps.from_docs(d) for f, d in facets.items()},
                    merge=True)


MIGRATIONS = [_v1, _v2, _v3]
