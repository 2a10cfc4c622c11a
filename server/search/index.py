"""A blind keyword index over archived contracts: no plaintext term, title or party name is ever stored.

**Term hash.**  Every organisation has its own key, ``org_key = HMAC-SHA256(search_key,
"signet/search/v1/org" || org)``, derived from the one search key given at construction (the server unwraps it
from its token).  A term is stored as ``HMAC-SHA256(org_key, "term" || org || field || term)`` (each part
length-prefixed, so no two inputs share an encoding) truncated to its first 8 bytes, kept as a signed 64-bit
integer.  Why 8 bytes is enough: the hash is a keyed PRF that nobody without the key can compute, so its length
buys no secrecy, only fewer accidental collisions, and a collision can only add a false hit inside the same
organisation (never a leak across organisations: both the key and the ``org`` column differ).  With 10 million
distinct (field, term) pairs in one organisation the chance that a given query term collides with any of them
is about 10^7 / 2^64 ≈ 5·10^-13.  Half the width of a 16-byte hash keeps the posting index small and its
comparisons integer ones (a ``bigint`` in PostgreSQL), which is what makes the queries fast.  Party filters
use the same construction over the person id (``"party" || org || person id``), so no name or id is stored
either; :mod:`server.search.terms` describes how text becomes terms.

**What is stored** (see ``MIGRATIONS``): per organisation a number and its document count; per contract a
number, its contract id, status and date (the filters and the date order); per (term hash, contract) the term
frequency; per term hash its document frequency; per (party hash, contract) one row; per term or party hash, and
per status and month, the set of its contracts as blocked bitmaps (:mod:`.bitmaps`: contract numbers only).  The
field is part of the hash rather than a column, so the same word in a title and in the text gives unrelated
hashes.  What an
observer of the database still learns is the shape: how many terms a contract has, how often each (unknown)
hash occurs, which contracts share hashes.

**Score** (``order="relevance"``): a field-weighted BM25 without length normalisation::

    score(c) = Σ_terms Σ_fields  W[field] · ln(1 + N / df(hash)) · tf · (k1 + 1) / (tf + k1),   k1 = 1.2

with ``N`` the organisation's number of indexed contracts, ``df`` the number of its contracts whose ``field``
holds the term, ``tf`` the occurrences of the term in that field, and the weights of :data:`FIELD_WEIGHTS`
(applied at query time, so they can change without re-indexing).  Ties, and ``order="date"``, are broken by
the order contracts were indexed; ``order="date"`` gives the newest first.  Every query term must occur in at
least one field (AND).

**Queries** have four plans, chosen per query by estimated cost (in postings read).  *Scan*: start from the
smallest candidate set (the rarest query term by its document frequencies, or the party filter's contracts, or the
date span's) and look every term up per candidate in the covering index ``(org, term, doc, tf)``, or, when no
candidate set is small enough, scan the terms' postings and group them by contract; every match is scored and
sorted.  *Newest first* (``order="date"``, when matches are dense): walk the contracts by ``(org, date, doc)``
backwards, probe each in the posting index and stop after ``offset + limit`` matches.  *Best first*
(``order="relevance"``, one term in many contracts, when no party or date filter makes the scan cheap): the
contracts holding the term in its less frequent fields (a title, say) are read whole, its postings in the most
frequent field are read in ``(org, term, tf DESC, doc)`` order (one field's score grows with its tf), and reading
stops once no unread contract can reach the page (Fagin's threshold algorithm, with index look-ups only for the
contracts of the other fields still within reach); a term in one field only, without filters, is that index order
itself.  It falls back to the scan when it would read too much.  *Bitmaps* (every AND, one term with a filter,
and one term under several fields best first, when the postings to read are many): the matches are the
intersection of each term's bitmap (the union of its fields'), the party's, the status's and the date span's (its
whole months' bitmaps, its partial months from the date index), so the exact total is a count of bits and no
posting is read for it.  Newest first, the contracts are walked by date and kept when their bit is set (or, when
the matches are few, their dates are read and sorted).  Best first, the matches are split into classes by the set
of query hashes they hold; a class scores at most the sum of its hashes' best contributions (their largest tf,
from the tf index); classes are scored best bound first until the k-th score found beats the next bound, and a
large class is read best first through its hashes' postings (Fagin's threshold algorithm).  When a class's hashes
are held exactly once but for at most one (a word in the titles and the text: few titles hold it twice, and those
are a class of their own), the others add the same to every member, so the open hash's index order is the class's
order and its first ``k`` members read best first are the class's best (none open: every member ties, the first
``k`` by number).  It falls back to the scan when it would read too much.  The early plans take the total from a
count by index probes from the smallest candidate set (for one term without filters: its document frequency, plus
its other fields' contracts not already counted).  Every plan gives the same pages, scores and totals
(``tests/unit/test_search_index.py`` compares them with a full scan).  Every statement names the organisation's
number (the contract-id lookup checks it on every row), so one organisation's rows are out of reach of another's
queries even if two hashes ever collided.  Measured with ``bench/search_index.py``: see README.md (benchmarks) and
docs/server.md (Search).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..clock import to_text
from ..errors import InvalidArgument
from ..store import Row, Store
from . import bitmaps
from .terms import query_terms, term_frequencies

#: Searchable fields and their weight in the score.
FIELD_WEIGHTS: Mapping[str, float] = {"title": 4.0, "parties": 3.0, "tags": 2.0, "text": 1.0}
K1 = 1.2
MAX_LIMIT = 100
MIN_KEY_BYTES = 32
_CHUNK = 200  # rows per multi-row INSERT (4 parameters each: well under every driver's limit)
_SEEK_COST = 1  # how many scanned postings one index seek is worth, for choosing a query plan (measured)
_WALK_COST = 2  # how many scanned postings one contract walked in date order (per term probe) is worth
_TOP_MIN = 2_000  # below this many postings to score, a query scans them all (no top-k pass is worth it)
_TOP_DENSE = 20  # ... nor unless the term is in this many times the contracts of the pages asked for
_TOP_BUDGET = 0.5  # the top-k pass gives up (and scans) after reading this share of the postings
_BATCH = 2_000  # contracts per scoring statement of the top-k pass
_BITS_MIN = 2_000  # from this many postings to read (estimated), a query takes the bitmap plan (plan 4)
_SCORE_ALL = 1_000  # plan 4 scores every match up to this many
_CLASS_ALL = 2_000  # ... and every contract of a class of matches up to this many
_MAX_CLASS_HASHES = 10  # ... splits the matches into classes over at most this many hashes
_BITS_BUDGET = 60_000  # ... and gives up (scans) after reading this many postings best first
_HEAD = 128  # plan 4 splits its classes on a hash's contracts holding it more than once, when at most this many


_MIGRATE_PAGE = 50_000  # postings per read while migration 3 fills the bitmaps


def _facets(status: str, date: str) -> tuple[str, str]:
    """The facets a contract is filed under in ``search_facets``: its status and the month of its date."""
    return "s" + status, "m" + date[:7]


def _write_bits(store: Store, table: str, column: str, org_no: int, sets: Mapping[Any, bitmaps.Bits], *,
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
    gone = [(key, block) for key, block, word in blocks if not word]
    kept = [(key, block, word) for key, block, word in blocks if word]
    for key, block in gone:
        store.execute(f"DELETE FROM {table} WHERE org = ? AND {column} = ? AND block = ?", (org_no, key, block))  # noqa: S608
    for i in range(0, len(kept), _CHUNK):
        chunk = kept[i:i + _CHUNK]
        store.execute(
            f"INSERT INTO {table} (org, {column}, block, bits) VALUES {', '.join(['(?, ?, ?, ?)'] * len(chunk))} "  # noqa: S608
            f"ON CONFLICT (org, {column}, block) DO UPDATE SET bits = excluded.bits",
            [v for key, block, word in chunk for v in (org_no, key, block, bitmaps.encode(word))])


def _mark(store: Store, table: str, column: str, org_no: int, keys: Sequence[Any], doc: int, *, on: bool) -> None:
    """Add ``doc`` to (or take it out of) the sets of ``keys``."""
    block, offset = doc >> bitmaps.SHIFT, doc & bitmaps.MASK
    stored: dict[Any, bytes] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        stored.update((r["k"], bytes(r["bits"])) for r in store.query(
            f"SELECT {column} AS k, bits FROM {table} WHERE org = ? AND block = ? AND {column} IN ({_marks(len(chunk))})",  # noqa: S608, E501
            [org_no, block, *chunk]))
    if on:
        kept = [(key, bitmaps.with_member(stored.get(key), offset)) for key in keys]
        gone = []
    else:
        after = [(key, bitmaps.without_member(stored[key], offset)) for key in keys if key in stored]
        kept = [(key, blob) for key, blob in after if blob is not None]
        gone = [key for key, blob in after if blob is None]
    for key in gone:
        store.execute(f"DELETE FROM {table} WHERE org = ? AND {column} = ? AND block = ?", (org_no, key, block))  # noqa: S608
    for i in range(0, len(kept), _CHUNK):
        chunk = kept[i:i + _CHUNK]
        store.execute(
            f"INSERT INTO {table} (org, {column}, block, bits) VALUES {', '.join(['(?, ?, ?, ?)'] * len(chunk))} "  # noqa: S608
            f"ON CONFLICT (org, {column}, block) DO UPDATE SET bits = excluded.bits",
            [v for key, blob in chunk for v in (org_no, key, block, blob)])


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
                    [org, *(() if last is None else last), _MIGRATE_PAGE])
                sets: dict[int, list[int]] = {}
                for r in rows:
                    sets.setdefault(int(r["k"]), []).append(int(r["doc"]))
                _write_bits(store, "search_bits", "term", org,
                            {k: bitmaps.from_docs(docs) for k, docs in sets.items()}, merge=True)
                if len(rows) < _MIGRATE_PAGE:
                    break
                last = (int(rows[-1]["k"]), int(rows[-1]["doc"]))
        facets: dict[str, list[int]] = {}
        for r in store.query("SELECT doc, status, date FROM search_docs WHERE org = ?", (org,)):
            for f in _facets(str(r["status"]), str(r["date"])):
                facets.setdefault(f, []).append(int(r["doc"]))
        _write_bits(store, "search_facets", "facet", org, {f: bitmaps.from_docs(d) for f, d in facets.items()},
                    merge=True)


MIGRATIONS = [_v1, _v2, _v3]

Order = Literal["relevance", "date"]


@dataclass(frozen=True)
class Page:
    """One page of results: ``(contract_id, score)`` best first, the exact number of matches, the next offset."""

    results: list[tuple[str, float]]
    total: int
    next: int | None = None


@dataclass(frozen=True)
class _Filters:
    party_hash: int | None
    status: str | None
    date_from: datetime | None
    date_to: datetime | None


_NO_FILTERS = _Filters(None, None, None, None)


@dataclass(frozen=True)
class _QueryTerm:
    hashes: list[tuple[int, float]]  # (term hash, W[field] * idf) for each field holding the term
    df: int  # sum of the fields' document frequencies: an upper bound of the postings to read
    dfs: list[int]  # each field's document frequency (as hashes)


def _part(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _h64(key: bytes, prefix: bytes, last: bytes) -> int:
    """The first 8 bytes of HMAC-SHA256(key, prefix || len(last) || last) as a signed integer."""
    digest = hmac.digest(key, prefix + len(last).to_bytes(4, "big") + last, "sha256")
    return int.from_bytes(digest[:8], "big", signed=True)


def _span(filters: _Filters) -> list[str]:
    """The date span's bounds as stored text ("~" sorts after every date)."""
    return [to_text(filters.date_from) if filters.date_from else "",
            to_text(filters.date_to) if filters.date_to else "~"]


def _holds(org_no: int, hashes: Sequence[tuple[tuple[int, float], int]], alias: str) -> tuple[str, list[Any]]:
    """SQL true when contract ``alias``.doc has a posting under one of ``hashes`` (tried in the order given: the
    most frequent first, so that the first probe usually decides)."""
    probes = [f"EXISTS (SELECT 1 FROM search_postings x WHERE x.org = ? AND x.term = ? AND x.doc = {alias}.doc)"  # noqa: S608
              for _ in hashes]
    return "(" + " OR ".join(probes) + ")", [v for (h, _), _ in hashes for v in (org_no, h)]


def _total(parts: list[tuple[int, float]]) -> float:
    """The sum of a contract's per-field scores, added in query-field order (as the SQL of ``_matches`` adds
    them: ``test_fast_plans_match_the_full_scan`` holds the two to the same pages)."""
    score = 0.0
    for _, part in sorted(parts):
        score += part
    return score


def _month_start(month: str) -> str:
    """The stored form of the first instant of a month (``YYYY-MM``)."""
    return f"{month}-01T00:00:00.000000Z"


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def _part_score(coef: float, tf: int) -> float:
    """One hash's part of a score (as the SQL of ``_matches`` computes it)."""
    return coef * tf * (K1 + 1) / (tf + K1)


class _OverBudget(Exception):
    """The best-first pass of the bitmap plan read more postings than :data:`_BITS_BUDGET`."""


class _Top:
    """The ``k`` best (score, contract) found so far, every contract scored, and the postings read."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heap: list[tuple[float, int]] = []  # min-heap of the k best as (score, -doc)
        self.found: dict[int, float] = {}
        self.budget = _BITS_BUDGET

    def take(self, scores: Mapping[int, float]) -> None:
        for doc, score in scores.items():
            self.found[doc] = score
            item = (score, -doc)
            if len(self.heap) < self.k:
                heapq.heappush(self.heap, item)
            elif item > self.heap[0]:
                heapq.heapreplace(self.heap, item)

    def beats(self, bound: float) -> bool:
        """Whether the k-th score found is above ``bound`` (a hair more, for rounding): nothing scoring at most
        ``bound`` can reach the page."""
        return len(self.heap) == self.k and self.heap[0][0] > bound * (1 + 1e-9)

    def spend(self, postings: int) -> None:
        self.budget -= postings
        if self.budget < 0:
            raise _OverBudget


def _classes(matches: bitmaps.Bits, held: list[tuple[int, float, bitmaps.Bits]], once: dict[int, bitmaps.Bits]
             ) -> list[tuple[list[tuple[int, bool]], bitmaps.Bits]]:
    """The matches split by the query hashes they hold (``held``: hash, weight, contracts), each as (its number
    in ``held``, True when a contract of the class may hold it more than once), and by ``once`` (hash -> its
    contracts holding it more than once, when known)."""
    classes: list[tuple[list[tuple[int, bool]], bitmaps.Bits]] = [([], matches)]
    for n, (h, _, bits) in enumerate(held):
        split: list[tuple[list[tuple[int, bool]], bitmaps.Bits]] = []
        for hs, members in classes:
            inside, outside = bitmaps.intersect(members, bits), bitmaps.difference(members, bits)
            if inside and h in once:
                more = bitmaps.intersect(inside, once[h])
                inside = bitmaps.difference(inside, once[h])
                if more:
                    split.append(([*hs, (n, True)], more))
            if inside:
                split.append(([*hs, (n, h not in once)], inside))
            if outside:
                split.append((hs, outside))
        classes = split
    return classes


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@dataclass
class BlindIndex:
    """Keyword search over contracts of many organisations, storing HMACs of terms only (see the module doc)."""

    store: Store
    key: bytes = field(repr=False)
    _org_keys: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    _prefixes: dict[tuple[str, str], bytes] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"the search key must have at least {MIN_KEY_BYTES} bytes")
        self.store.migrate("search", MIGRATIONS)

    # -- hashing

    def _org_key(self, org: str) -> bytes:
        k = self._org_keys.get(org)
        if k is None:
            k = hmac.digest(self.key, b"signet/search/v1/org\x00" + org.encode("utf-8"), hashlib.sha256)
            self._org_keys[org] = k
        return k

    def _prefix(self, org: str, kind: str) -> bytes:
        p = self._prefixes.get((org, kind))
        if p is None:
            kind_parts = [b"party"] if kind == "party" else [b"term", kind.encode("ascii")]
            p = self._prefixes[(org, kind)] = b"".join(_part(x) for x in [kind_parts[0], org.encode("utf-8"),
                                                                             *kind_parts[1:]])
        return p

    def term_hash(self, org: str, field_name: str, term: str) -> int:
        """The stored form of ``term`` (already normalised) in ``field_name`` of ``org``'s contracts."""
        return _h64(self._org_key(org), self._prefix(org, field_name), term.encode("utf-8"))

    def party_hash(self, org: str, party: str) -> int:
        """The stored form of a party (person id) of ``org``'s contracts."""
        return _h64(self._org_key(org), self._prefix(org, "party"), party.encode("utf-8"))

    # -- writing

    def _org_no(self, org: str, *, create: bool) -> tuple[int, int] | None:
        row = self.store.query_one("SELECT id, docs FROM search_orgs WHERE org = ?", (org,))
        if row is not None:
            return int(row["id"]), int(row["docs"])
        if not create:
            return None
        return self.store.insert("search_orgs", {"org": org, "docs": 0}), 0

    def add(self, org: str, contract_id: str, fields: Mapping[str, str], parties: Sequence[str], status: str,
            date: datetime) -> None:
        """Index a contract (again: its earlier terms are replaced).  ``fields`` maps some of
        :data:`FIELD_WEIGHTS` to text; ``parties`` are person ids (for the ``party`` filter)."""
        unknown = set(fields) - set(FIELD_WEIGHTS)
        if unknown:
            raise InvalidArgument(f"unknown search fields {sorted(unknown)}; known: {sorted(FIELD_WEIGHTS)}")
        when = to_text(date)
        postings: dict[int, int] = {}
        key = self._org_key(org)
        for name, text in fields.items():
            prefix = self._prefix(org, name)
            for term, tf in term_frequencies(text).items():
                postings[_h64(key, prefix, term.encode("utf-8"))] = tf
        party_hashes = sorted({self.party_hash(org, p) for p in parties})
        with self.store.transaction():
            org_no, _ = self._org_no(org, create=True)  # type: ignore[misc]  # create=True never gives None
            old = self.store.query_one("SELECT doc FROM search_docs WHERE org = ? AND contract_id = ?",
                                       (org_no, contract_id))
            if old is not None:
                self._remove_doc(org_no, int(old["doc"]))
            doc = self.store.insert("search_docs", {"org": org_no, "contract_id": contract_id, "status": status,
                                                    "date": when})
            rows = sorted(postings.items())
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i:i + _CHUNK]
                self.store.execute(
                    f"INSERT INTO search_postings (org, term, doc, tf) VALUES {', '.join(['(?, ?, ?, ?)'] * len(chunk))}",  # noqa: S608, E501
                    [v for term, tf in chunk for v in (org_no, term, doc, min(tf, 1_000_000))])
                self.store.execute(
                    f"INSERT INTO search_terms (org, term, df) VALUES {', '.join(['(?, ?, 1)'] * len(chunk))} "  # noqa: S608
                    "ON CONFLICT (org, term) DO UPDATE SET df = search_terms.df + 1",
                    [v for term, _ in chunk for v in (org_no, term)])
            if party_hashes:
                self.store.execute(
                    f"INSERT INTO search_parties (org, party, doc) VALUES {', '.join(['(?, ?, ?)'] * len(party_hashes))}",  # noqa: S608, E501
                    [v for p in party_hashes for v in (org_no, p, doc)])
            _mark(self.store, "search_bits", "term", org_no, [*postings, *party_hashes], doc, on=True)
            _mark(self.store, "search_facets", "facet", org_no, _facets(status, when), doc, on=True)
            self.store.execute("UPDATE search_orgs SET docs = docs + 1 WHERE id = ?", (org_no,))

    def remove(self, org: str, contract_id: str) -> bool:
        """Forget a contract; False when it was not indexed."""
        with self.store.transaction():
            known = self._org_no(org, create=False)
            if known is None:
                return False
            row = self.store.query_one("SELECT doc FROM search_docs WHERE org = ? AND contract_id = ?",
                                       (known[0], contract_id))
            if row is None:
                return False
            self._remove_doc(known[0], int(row["doc"]))
            return True

    def _remove_doc(self, org_no: int, doc: int) -> None:
        terms = [int(r["term"]) for r in self.store.query(
            "SELECT term FROM search_postings WHERE doc = ? AND org = ?", (doc, org_no))]
        for i in range(0, len(terms), _CHUNK):
            chunk = terms[i:i + _CHUNK]
            self.store.execute(f"UPDATE search_terms SET df = df - 1 WHERE org = ? AND term IN ({_marks(len(chunk))})",  # noqa: S608
                               [org_no, *chunk])
            self.store.execute(f"DELETE FROM search_terms WHERE org = ? AND term IN ({_marks(len(chunk))}) AND df <= 0",  # noqa: S608
                               [org_no, *chunk])
        parties = [int(r["party"]) for r in self.store.query(
            "SELECT party FROM search_parties WHERE doc = ? AND org = ?", (doc, org_no))]
        _mark(self.store, "search_bits", "term", org_no, [*terms, *parties], doc, on=False)
        row = self.store.query_one("SELECT status, date FROM search_docs WHERE doc = ? AND org = ?", (doc, org_no))
        if row is not None:
            _mark(self.store, "search_facets", "facet", org_no, _facets(str(row["status"]), str(row["date"])), doc,
                  on=False)
        self.store.execute("DELETE FROM search_postings WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("DELETE FROM search_parties WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("DELETE FROM search_docs WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("UPDATE search_orgs SET docs = docs - 1 WHERE id = ?", (org_no,))

    # -- searching

    def _query_terms(self, org: str, org_no: int, n_docs: int, terms: Iterable[str]) -> list[_QueryTerm] | None:
        """The stored hashes of each query term with their weights; None when some term occurs nowhere."""
        wanted = {self.term_hash(org, f, t): (i, f) for i, t in enumerate(terms) for f in FIELD_WEIGHTS}
        found = self.store.query(
            f"SELECT term, df FROM search_terms WHERE org = ? AND term IN ({_marks(len(wanted))})",  # noqa: S608
            [org_no, *wanted])
        per_term: dict[int, list[tuple[int, float, int]]] = {}
        for r in found:
            h, df = int(r["term"]), int(r["df"])
            i, f = wanted[h]
            per_term.setdefault(i, []).append((h, FIELD_WEIGHTS[f] * math.log(1 + n_docs / df), df))
        n_terms = len({i for i, _ in wanted.values()})
        if len(per_term) < n_terms:
            return None
        return [_QueryTerm([(h, c) for h, c, _ in hs], sum(df for *_, df in hs), [df for *_, df in hs])
                for _, hs in sorted(per_term.items())]

    def search(self, org: str, query: str, *, party: str | None = None, status: str | None = None,
               date_from: datetime | None = None, date_to: datetime | None = None, order: Order = "relevance",
               limit: int = 20, offset: int = 0) -> Page:
        """Contracts of ``org`` holding every term of ``query``, filtered by party (person id), status and date
        (``date_from`` inclusive, ``date_to`` exclusive), best or newest first."""
        if order not in ("relevance", "date"):
            raise InvalidArgument(f"unknown order {order!r}: use 'relevance' or 'date'")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise InvalidArgument("offset must not be negative")
        terms = query_terms(query)
        known = self._org_no(org, create=False)
        empty = Page([], 0, None)
        if known is None:
            return empty
        org_no, n_docs = known
        qterms = self._query_terms(org, org_no, n_docs, terms)
        if qterms is None:
            return empty
        filters = _Filters(None if party is None else self.party_hash(org, party), status, date_from, date_to)
        return self._run(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)

    def _candidates(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters) -> list[tuple[int, str, list[Any]]]:
        """The candidate sets a query can start from: (size, SQL giving their contracts, parameters)."""
        party_hash = filters.party_hash
        rarest = min(qterms, key=lambda q: q.df)
        options: list[tuple[int, str, list[Any]]] = []
        if len(qterms) > 1:
            hs = [h for h, _ in rarest.hashes]
            sql = f"SELECT doc FROM search_postings WHERE org = ? AND term IN ({_marks(len(hs))})"  # noqa: S608
            options.append((rarest.df, sql, [org_no, *hs]))
        if party_hash is not None:
            row = self.store.query_one("SELECT COUNT(*) AS n FROM search_parties WHERE org = ? AND party = ?",
                                       (org_no, party_hash))
            options.append((int(row["n"]) if row else 0, "SELECT doc FROM search_parties WHERE org = ? AND party = ?",
                            [org_no, party_hash]))
        if filters.date_from is not None or filters.date_to is not None:
            span_params = [org_no, *_span(filters)]
            row = self.store.query_one("SELECT COUNT(*) AS n FROM search_docs WHERE org = ? AND date >= ? AND date < ?",
                                       span_params)
            options.append((int(row["n"]) if row else 0,
                            "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ?", span_params))
        return options

    @staticmethod
    def _pick(qterms: list[_QueryTerm], options: list[tuple[int, str, list[Any]]]
              ) -> tuple[tuple[str, list[Any]] | None, int]:
        """The candidate set to start from (SQL and parameters), or None to scan every term's postings; and the
        estimated cost in scanned postings."""
        scan = sum(q.df for q in qterms)
        if not options:
            return None, scan
        size, sql, params = min(options, key=lambda o: o[0])
        seeks = size * sum(len(q.hashes) for q in qterms) * _SEEK_COST
        return ((sql, params), seeks) if seeks < scan else (None, scan)

    def _run(self, org_no: int, n_docs: int, qterms: list[_QueryTerm], filters: _Filters, order: Order, *,
             limit: int, offset: int) -> Page:
        options = self._candidates(org_no, qterms, filters)
        driver, cost = self._pick(qterms, options)
        page: Page | None = None
        if cost >= _BITS_MIN and (len(qterms) > 1 or filters != _NO_FILTERS):
            page = self._by_bits(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)
            if page is not None:
                return page
        if order == "date":
            page = self._by_date(org_no, n_docs, qterms, filters, options, cost=cost, limit=limit, offset=offset)
        elif len(qterms) == 1 and driver is None and cost >= _TOP_MIN and qterms[0].df >= _TOP_DENSE * (offset + limit):
            # one term in many contracts: the best are found early, and the total is cheap (no AND to count);
            # under several fields without filters, by the bitmaps' classes (the total a count of bits)
            if len(qterms[0].hashes) > 1 and filters == _NO_FILTERS and cost >= _BITS_MIN:
                page = self._by_bits(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)
            if page is None:
                page = self._by_score(org_no, qterms, filters, options, limit=limit, offset=offset)
        return page if page is not None else self._scan(org_no, qterms, filters, driver, order, limit=limit,
                                                        offset=offset)

    # -- plan 4: the matches as bitmaps (every AND, every filter), then the page

    def _read_bits(self, table: str, column: str, org_no: int, keys: Sequence[Any]) -> dict[Any, bitmaps.Bits]:
        out: dict[Any, bitmaps.Bits] = {key: {} for key in keys}
        for r in self.store.query(
                f"SELECT {column} AS k, block, bits FROM {table} WHERE org = ? AND {column} IN ({_marks(len(keys))})",  # noqa: S608
                [org_no, *keys]):
            out[r["k"]][int(r["block"])] = bitmaps.decode(bytes(r["bits"]))
        return out

    def _between(self, org_no: int, lo: str | None, hi: str | None) -> bitmaps.Bits:
        """The contracts dated in [lo, hi), from the date index (a month's worth at most, see :meth:`_span_bits`)."""
        return bitmaps.from_docs(int(r["doc"]) for r in self.store.query(
            "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ?", (org_no, lo or "", hi or "~")))

    def _span_bits(self, org_no: int, filters: _Filters) -> bitmaps.Bits:
        """The contracts dated within the filter's span: the months wholly inside from their bitmaps, the partial
        months at either end from the date index."""
        lo = to_text(filters.date_from) if filters.date_from is not None else None
        hi = to_text(filters.date_to) if filters.date_to is not None else None
        first = None if lo is None else lo[:7] if lo == _month_start(lo[:7]) else _next_month(lo[:7])
        end = None if hi is None else hi[:7]
        if first is not None and end is not None and first >= end:
            return self._between(org_no, lo, hi)
        out: bitmaps.Bits = {}
        for r in self.store.query("SELECT block, bits FROM search_facets WHERE org = ? AND facet >= ? AND facet < ?",
                                  (org_no, "m" + (first or ""), "m" + (end or "~"))):
            block = int(r["block"])
            out[block] = out.get(block, 0) | bitmaps.decode(bytes(r["bits"]))
        if lo is not None and first is not None and lo < _month_start(first):
            out = bitmaps.union(out, self._between(org_no, lo, _month_start(first)))
        if hi is not None and end is not None and _month_start(end) < hi:
            out = bitmaps.union(out, self._between(org_no, _month_start(end), hi))
        return out

    def _by_bits(self, org_no: int, n_docs: int, qterms: list[_QueryTerm], filters: _Filters, order: Order, *,
                 limit: int, offset: int) -> Page | None:
        """Intersect the terms' bitmaps (each the union of its fields') and the filters': the exact total, and the
        page from it (newest first by walking the dates, best first by :meth:`_bits_best`); None when the best
        first pass would read too much."""
        keys = [h for q in qterms for h, _ in q.hashes]
        if filters.party_hash is not None:
            keys.append(filters.party_hash)
        sets = self._read_bits("search_bits", "term", org_no, keys)
        ands = [functools.reduce(bitmaps.union, (sets[h] for h, _ in q.hashes)) for q in qterms]
        if filters.party_hash is not None:
            ands.append(sets[filters.party_hash])
        if filters.status is not None:
            ands.append(self._read_bits("search_facets", "facet", org_no, ["s" + filters.status])["s" + filters.status])
        ands.sort(key=len)
        matches = functools.reduce(bitmaps.intersect, ands)
        if matches and (filters.date_from is not None or filters.date_to is not None):
            matches = bitmaps.intersect(matches, self._span_bits(org_no, filters))
        total = bitmaps.count(matches)
        k = offset + limit
        if total <= offset:
            return Page([], total)
        if order == "date":
            return self._bits_newest(org_no, n_docs, qterms, filters, matches, total, limit=limit, offset=offset)
        if total <= _SCORE_ALL or total <= k:
            found = self._scores(org_no, qterms, _NO_FILTERS, bitmaps.members(matches), summed=True)
        else:
            held = [(h, coef, bitmaps.intersect(matches, sets[h])) for q in qterms for h, coef in q.hashes]
            best = self._bits_best(org_no, qterms, [x for x in held if x[2]], matches, k)
            if best is None:
                return None
            found = dict(best)
        top = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
        return self._page(org_no, top[offset:], total, offset)

    def _bits_newest(self, org_no: int, n_docs: int, qterms: list[_QueryTerm], filters: _Filters,
                     matches: bitmaps.Bits, total: int, *, limit: int, offset: int) -> Page:
        """The page newest first: the matches' dates read and sorted when they are few, else the contracts walked
        newest first (within the date span) and kept when they match, until the page is full."""
        k = offset + limit
        if total * total <= k * n_docs:  # fewer rows than the walk is expected to read
            docs = bitmaps.members(matches)
            dated: list[tuple[str, int]] = []
            for i in range(0, len(docs), _BATCH):
                chunk = docs[i:i + _BATCH]
                dated += [(str(r["date"]), int(r["doc"])) for r in self.store.query(
                    f"SELECT doc, org, date FROM search_docs WHERE doc IN ({_marks(len(chunk))})", chunk)  # noqa: S608
                    if int(r["org"]) == org_no]
            page = [doc for _, doc in sorted(dated, reverse=True)[offset:k]]
        else:
            span = _span(filters)
            read, size = 0, max(64, 2 * k * n_docs // max(total, 1))
            kept: list[int] = []
            while len(kept) < k:
                rows = self.store.query(
                    "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ? "
                    "ORDER BY date DESC, doc DESC LIMIT ? OFFSET ?", (org_no, *span, size, read))
                read += len(rows)
                kept += [doc for r in rows if bitmaps.has(matches, doc := int(r["doc"]))]
                if len(rows) < size:
                    break
                size *= 2
            page = kept[offset:k]
        scores = self._scores(org_no, qterms, _NO_FILTERS, page)
        # (a contract removed meanwhile is left out)
        return self._page(org_no, [(doc, scores[doc]) for doc in page if doc in scores], total, offset)

    def _bits_best(self, org_no: int, qterms: list[_QueryTerm], held: list[tuple[int, float, bitmaps.Bits]],
                   matches: bitmaps.Bits, k: int) -> list[tuple[int, float]] | None:
        """The ``k`` best matches (or more, ties included).  The matches are split into classes by the set of
        query hashes they hold (the bitmaps say which); a class's contracts score at most the sum of its hashes'
        best contributions (their largest tf, from the tf index).  Classes are taken best bound first and stop
        once the k-th score found beats the next bound; a class is scored whole when small, else its hashes'
        postings are read best first (Fagin's threshold algorithm within the class)."""
        if len(held) > _MAX_CLASS_HASHES:
            return None
        bound: dict[int, float] = {}
        once: dict[int, bitmaps.Bits] = {}  # hash -> the few contracts holding it more than once (when few)
        for h, coef, _ in held:
            # the head of its tf order: its largest tf, and whether few contracts hold it more than once (a word
            # in titles): the others then add exactly its part at tf 1, and the classes split on that
            rows = self.store.query("SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? AND tf > 1 "
                                    "ORDER BY tf DESC, doc LIMIT ?", (org_no, h, _HEAD + 1))
            bound[h] = _part_score(coef, int(rows[0]["tf"]) if rows else 1)
            if len(rows) <= _HEAD:
                once[h] = bitmaps.from_docs(int(r["doc"]) for r in rows)
        classes = _classes(matches, held, once)

        def limit_of(hs: list[tuple[int, bool]]) -> float:
            return sum(bound[held[n][0]] if more else _part_score(held[n][1], 1) for n, more in hs)

        top = _Top(k)
        try:
            for limit, hs, members in sorted(((limit_of(hs), hs, members) for hs, members in classes),
                                             key=lambda c: -c[0]):
                if top.beats(limit):
                    break
                lists = {held[n][0]: (held[n][1], bound[held[n][0]] if more else _part_score(held[n][1], 1))
                         for n, more in hs}
                size, opened = bitmaps.count(members), [n for n, more in hs if more]
                # in one hash's tf order (see _class_by_tf) when that reads fewer rows than scoring the class whole
                by_tf = len(opened) == 1 or (not opened and len(lists) <= 2)
                if by_tf and opened and size <= _CLASS_ALL:
                    by_tf = top.k * bitmaps.count(held[opened[0]][2]) < size * len(lists) * size
                if size <= _CLASS_ALL and not by_tf:
                    top.take(self._scores(org_no, qterms, _NO_FILTERS, bitmaps.members(members), summed=True))
                elif by_tf or len(lists) == 1:
                    self._class_by_tf(org_no, qterms, [(held[n][0], held[n][1], more) for n, more in hs], members,
                                      top)
                else:
                    self._class_threshold(org_no, qterms, lists, members, top)
        except _OverBudget:
            return None
        return list(top.found.items())

    def _class_by_tf(self, org_no: int, qterms: list[_QueryTerm], hs: list[tuple[int, float, bool]],
                     members: bitmaps.Bits, top: _Top) -> None:
        """A class whose order is one hash's tf order: its hashes (hash, weight, whether a member may hold it more
        than once) are one hash, or hold tf 1 exactly but for at most one.  The others then add the same to every
        member, so the class's first ``k`` members in the open hash's postings best first are its best; when none
        is open, every member scores the same and the first ``k`` by number are its best (ties go by number)."""
        k = top.k
        opened = [(h, coef) for h, coef, more in hs if more]
        if not opened and len(hs) <= 2:  # (two equal parts: the sum is the same whichever is added first)
            top.take(self._scores(org_no, qterms, _NO_FILTERS, bitmaps.first(members, k), summed=True))
            return
        h, coef = opened[0] if opened else hs[0][:2]
        kept: list[tuple[int, int]] = []
        for rows, _, _ in self._best_first(org_no, h, k):
            top.spend(len(rows))
            for r in rows:
                doc = int(r["doc"])
                if len(kept) < k and bitmaps.has(members, doc):
                    kept.append((doc, int(r["tf"])))
            if len(kept) == k:
                break
        if len(hs) == 1:
            top.take({doc: _part_score(coef, tf) for doc, tf in kept})
            return
        if len(kept) == k and kept[-1][1] > 1:
            # the sum grows with the open hash's tf; a rounding could only tie two tfs when their parts were
            # within a hair of each other (never for realistic tfs): then leave it to the scan
            rest = sum(_part_score(c, 1) for _, c, more in hs if not more)
            hi, lo = rest + _part_score(coef, kept[-1][1]), rest + _part_score(coef, kept[-1][1] - 1)
            if hi - lo <= hi * 1e-9:
                raise _OverBudget
        top.take(self._scores(org_no, qterms, _NO_FILTERS, [doc for doc, _ in kept], summed=True))

    def _class_threshold(self, org_no: int, qterms: list[_QueryTerm], lists: dict[int, tuple[float, float]],
                         members: bitmaps.Bits, top: _Top) -> None:
        """Fagin's threshold algorithm over the hashes of a class: read the list of the hash that can still add
        the most, best first; score the class's contracts read that can still reach the page; stop once no unread
        one can (each hash adds at most what its list's cursor does)."""
        cursors = {h: [cb, 0, max(64, 2 * top.k)] for h, (_, cb) in lists.items()}  # bound, read, chunk
        while not top.beats(sum(c[0] for c in cursors.values())):
            live = [h for h, c in cursors.items() if c[0] > 0]
            if not live:
                break
            h = max(live, key=lambda x: cursors[x][0])
            coef = lists[h][0]
            _, read, chunk = cursors[h]
            rows = self.store.query("SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? "
                                    "ORDER BY tf DESC, doc LIMIT ? OFFSET ?", (org_no, h, int(chunk), int(read)))
            top.spend(len(rows))
            last = int(rows[-1]["tf"]) if rows else 0
            cursors[h] = [0.0 if len(rows) < chunk else _part_score(coef, last), read + len(rows), chunk * 2]
            rest = sum(c[0] for x, c in cursors.items() if x != h)
            # within reach: this hash's part plus at most the cursors of the others
            new = [doc for r in rows if (doc := int(r["doc"])) not in top.found and bitmaps.has(members, doc)
                   and not top.beats(_part_score(coef, int(r["tf"])) + rest)]
            top.take(self._scores(org_no, qterms, _NO_FILTERS, new, summed=True))

    # -- plan 1: score every match in one statement

    def _matches(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters,
                 driver: tuple[str, list[Any]] | None, *, window: bool, dated: bool) -> tuple[list[str], list[Any]]:
        """SQL (up to its WHERE clause) giving ``doc``, ``score`` (and ``total``) of every match."""
        party_hash, status, date_from, date_to = filters.party_hash, filters.status, filters.date_from, filters.date_to
        q_rows = [(h, i, coef) for i, q in enumerate(qterms) for h, coef in q.hashes]
        params: list[Any] = [v for row in q_rows for v in row]
        sql = [f"WITH q (term, qi, coef) AS (VALUES {', '.join(['(?, ?, ?)'] * len(q_rows))}), "  # noqa: S608
               "m AS (SELECT p.doc AS doc, SUM(q.coef * p.tf * ? / (p.tf + ?)) AS score, "
               "COUNT(DISTINCT q.qi) AS n FROM q JOIN search_postings p ON p.org = ? AND p.term = q.term"]
        params += [K1 + 1, K1, org_no]
        if driver is not None:
            sql.append(f" WHERE p.doc IN ({driver[0]})")
            params += driver[1]
        sql.append(" GROUP BY p.doc) SELECT m.doc AS doc, m.score AS score")
        sql.append(", COUNT(*) OVER () AS total FROM m" if window else " FROM m")
        filtered = status is not None or date_from is not None or date_to is not None
        if filtered or dated:
            sql.append(" JOIN search_docs d ON d.doc = m.doc AND d.org = ?")
            params.append(org_no)
        where = ["m.n = ?"]
        params.append(len(qterms))
        if status is not None:
            where.append("d.status = ?")
            params.append(status)
        if date_from is not None:
            where.append("d.date >= ?")
            params.append(to_text(date_from))
        if date_to is not None:
            where.append("d.date < ?")
            params.append(to_text(date_to))
        if party_hash is not None and (driver is None or "search_parties" not in driver[0]):
            where.append("m.doc IN (SELECT doc FROM search_parties WHERE org = ? AND party = ?)")
            params += [org_no, party_hash]
        sql.append(" WHERE " + " AND ".join(where))
        return sql, params

    def _scan(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters, driver: tuple[str, list[Any]] | None,
              order: Order, *, limit: int, offset: int) -> Page:
        sql, params = self._matches(org_no, qterms, filters, driver, window=True, dated=order == "date")
        sql.append(" ORDER BY m.score DESC, m.doc" if order == "relevance" else " ORDER BY d.date DESC, m.doc DESC")
        sql.append(" LIMIT ? OFFSET ?")
        params += [limit, offset]
        rows = self.store.query("".join(sql), params)
        if not rows:
            # past the end, no row carries the total: ask for the first page
            if not offset:
                return Page([], 0)
            return Page([], self._scan(org_no, qterms, filters, driver, "relevance", limit=1, offset=0).total)
        total = int(rows[0]["total"])
        return self._page(org_no, [(int(r["doc"]), float(r["score"])) for r in rows], total, offset)

    def _page(self, org_no: int, hits: list[tuple[int, float]], total: int, offset: int) -> Page:
        if not hits:
            return Page([], total)
        ids = self._contract_ids(org_no, [doc for doc, _ in hits])
        nxt = offset + len(hits) if offset + len(hits) < total else None
        return Page([(ids[doc], score) for doc, score in hits], total, nxt)

    def _scores(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters, docs: list[int], *,
                summed: bool = False) -> dict[int, float]:
        """The scores of those of ``docs`` that match (every term, the filters), computed as by :meth:`_scan`
        (``summed``: always by its SQL, one row per contract, rather than from the postings)."""
        out: dict[int, float] = {}
        if filters == _NO_FILTERS and not summed:  # from the postings alone, summed in _matches's SQL order
            q_rows = [(h, i, coef) for i, q in enumerate(qterms) for h, coef in q.hashes]
            rank = {h: (n, i, coef) for n, (h, i, coef) in enumerate(q_rows)}
            for i in range(0, len(docs), _BATCH):
                chunk = docs[i:i + _BATCH]
                per_doc: dict[int, list[tuple[int, int, float, int]]] = {}
                for r in self.store.query(
                        f"SELECT doc, term, tf FROM search_postings WHERE org = ? AND term IN ({_marks(len(rank))}) "  # noqa: S608
                        f"AND doc IN ({_marks(len(chunk))})", [org_no, *rank, *chunk]):
                    per_doc.setdefault(int(r["doc"]), []).append((*rank[int(r["term"])], int(r["tf"])))
                for doc, hits in per_doc.items():
                    if len({qi for _, qi, _, _ in hits}) == len(qterms):
                        out[doc] = _total([(n, coef * tf * (K1 + 1) / (tf + K1)) for n, _, coef, tf in hits])
            return out
        for i in range(0, len(docs), _BATCH):
            chunk = docs[i:i + _BATCH]
            sql, params = self._matches(org_no, qterms, filters, (_marks(len(chunk)), chunk), window=False,
                                        dated=False)
            out.update((int(r["doc"]), float(r["score"])) for r in self.store.query("".join(sql), params))
        return out

    # -- plan 2: walk the contracts newest first, stop after the page

    def _by_date(self, org_no: int, n_docs: int, qterms: list[_QueryTerm], filters: _Filters,
                 options: list[tuple[int, str, list[Any]]], *, cost: int, limit: int, offset: int) -> Page | None:
        """Contracts newest first, each checked in the posting index, until ``offset + limit`` match; None when
        matches are too sparse for that to beat scoring them all."""
        share = math.prod(min(1.0, q.df / max(n_docs, 1)) for q in qterms)
        for size, sql, _ in options:
            if "search_postings" not in sql:  # the party's contracts, the date span's (the terms are counted above)
                share *= size / max(n_docs, 1)
        k = offset + limit
        if share <= 0 or k / share * (len(qterms) + 1) * _WALK_COST >= cost:
            return None
        where, params = self._conditions(org_no, qterms, filters, "d", skip_party=False)
        rows = self.store.query(
            "SELECT d.doc AS doc FROM search_docs d WHERE d.org = ?"  # noqa: S608
            + "".join(f" AND {w}" for w in where) + " ORDER BY d.date DESC, d.doc DESC LIMIT ?",
            [org_no, *params, k])
        docs = [int(r["doc"]) for r in rows][offset:]
        total = len(rows) if len(rows) < k else self._count(org_no, qterms, filters, options)
        if not docs:
            return Page([], total)
        scores = self._scores(org_no, qterms, filters, docs)
        # (a contract removed since the walk is left out)
        return self._page(org_no, [(doc, scores[doc]) for doc in docs if doc in scores], total, offset)

    def _conditions(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters, alias: str, *,
                    skip_party: bool, skip_term: int | None = None) -> tuple[list[str], list[Any]]:
        """Conditions that contract ``alias``.doc holds every term (rarest first) and passes the filters (the
        status and dates are ``alias``'s columns: a ``search_docs`` row when there are any)."""
        where: list[str] = []
        params: list[Any] = []
        if filters.date_from is not None:
            where.append(f"{alias}.date >= ?")
            params.append(to_text(filters.date_from))
        if filters.date_to is not None:
            where.append(f"{alias}.date < ?")
            params.append(to_text(filters.date_to))
        if filters.status is not None:
            where.append(f"{alias}.status = ?")
            params.append(filters.status)
        for i, q in sorted(enumerate(qterms), key=lambda iq: iq[1].df):
            if i == skip_term:
                continue
            sql, more = _holds(org_no, sorted(zip(q.hashes, q.dfs, strict=True), key=lambda hd: -hd[1]), alias)
            where.append(sql)
            params += more
        if filters.party_hash is not None and not skip_party:
            where.append("EXISTS (SELECT 1 FROM search_parties y WHERE y.org = ? AND y.party = ? "  # noqa: S608
                         f"AND y.doc = {alias}.doc)")
            params += [org_no, filters.party_hash]
        return where, params

    def _count(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters,
               options: list[tuple[int, str, list[Any]]]) -> int:
        """The number of matches, by probing the index from the smallest candidate set (no scoring, no sort)."""
        span = filters.date_from is not None or filters.date_to is not None
        sizes = {("party" if "search_parties" in sql else "span"): size for size, sql, _ in options
                 if "search_postings" not in sql}
        t = min(range(len(qterms)), key=lambda i: qterms[i].df)
        if min(sizes.values(), default=qterms[t].df + 1) < qterms[t].df:
            source = min(sizes, key=lambda s: sizes[s])
            if source == "span":
                where, params = self._conditions(org_no, qterms, filters, "d", skip_party=False)
                sql = "SELECT COUNT(*) AS n FROM search_docs d WHERE d.org = ?" + "".join(f" AND {w}" for w in where)  # noqa: S608
                row = self.store.query_one(sql, [org_no, *params])
            else:
                where, params = self._conditions(org_no, qterms, filters, "d", skip_party=True)
                sql = ("SELECT COUNT(*) AS n FROM search_parties c JOIN search_docs d ON d.doc = c.doc AND d.org = ? "  # noqa: S608
                       "WHERE c.org = ? AND c.party = ?" + "".join(f" AND {w}" for w in where))
                row = self.store.query_one(sql, [org_no, org_no, filters.party_hash, *params])
            return int(row["n"]) if row else 0
        # from the rarest term's postings, field by field (a contract counts under the first field holding it)
        hashes = sorted(zip(qterms[t].hashes, qterms[t].dfs, strict=True), key=lambda hd: -hd[1])
        filtered = span or filters.status is not None or filters.party_hash is not None or len(qterms) > 1
        total = 0
        for j, ((h, _), df) in enumerate(hashes):
            if j == 0 and not filtered:
                total += df
                continue
            where, params = self._conditions(org_no, qterms, filters, "d" if span or filters.status else "c",
                                             skip_party=False, skip_term=t)
            if j:
                sql, more = _holds(org_no, hashes[:j], "c")
                where.insert(0, f"NOT {sql}")
                params[0:0] = more
            join = ""
            join_params: list[Any] = []
            if span or filters.status is not None:
                join = " JOIN search_docs d ON d.doc = c.doc AND d.org = ?"
                join_params = [org_no]
            sql = (f"SELECT COUNT(*) AS n FROM search_postings c{join} WHERE c.org = ? AND c.term = ?"  # noqa: S608
                   + "".join(f" AND {w}" for w in where))
            row = self.store.query_one(sql, [*join_params, org_no, h, *params])
            total += int(row["n"]) if row else 0
        return total

    # -- plan 3: one term, the best contracts first (its postings in tf order)

    def _by_score(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters,
                  options: list[tuple[int, str, list[Any]]], *, limit: int, offset: int) -> Page | None:
        """One term in many contracts, best first.  The contracts holding it in its less frequent fields are
        scored in full up front; its postings in the most frequent field are read best first (one field's score
        grows with tf) and reading stops once no unread contract can reach the page (Fagin's threshold
        algorithm); None when that would read too much."""
        k = offset + limit
        (term,) = qterms
        by_df = sorted(zip(term.hashes, term.dfs, strict=True), key=lambda hd: -hd[1])
        (big, coef), big_df = by_df[0]
        plain = filters == _NO_FILTERS
        if len(by_df) == 1 and plain:  # the score is the tf's alone: the index order is the result order
            rows = self.store.query(
                "SELECT doc, ? * tf * ? / (tf + ?) AS score FROM search_postings WHERE org = ? AND term = ? "
                "ORDER BY tf DESC, doc LIMIT ? OFFSET ?", (coef, K1 + 1, K1, org_no, big, limit, offset))
            return self._page(org_no, [(int(r["doc"]), float(r["score"])) for r in rows], big_df, offset)
        budget = big_df * _TOP_BUDGET
        if sum(df for _, df in by_df[1:]) > budget:
            return None
        if plain:
            return self._by_score_plain(org_no, term, by_df, limit=limit, offset=offset)
        found: dict[int, float] = {}
        seen: set[int] = set()
        if len(by_df) > 1:
            others = [h for (h, _), _ in by_df[1:]]
            seen = {int(r["doc"]) for r in self.store.query(
                f"SELECT doc FROM search_postings WHERE org = ? AND term IN ({_marks(len(others))})",  # noqa: S608
                [org_no, *others])}
            found.update(self._scores(org_no, qterms, filters, sorted(seen)))
        for rows, read, exhausted in self._best_first(org_no, big, k):
            new: list[int] = []
            for r in rows:
                doc = int(r["doc"])
                if doc not in seen:  # (those were scored in full above)
                    new.append(doc)
            found.update(self._scores(org_no, qterms, filters, new))
            last = int(rows[-1]["tf"]) if rows else 0
            bound = 0.0 if exhausted else coef * last * (K1 + 1) / (last + K1)
            best = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
            # an unread contract holds the term in this field only, at most as often as the last one read: it
            # scores at most ``bound`` (a hair more for rounding); stop when the k-th is above that
            if exhausted or (len(best) == k and best[-1][1] > bound * (1 + 1e-9)):
                break
            if read > budget:
                return None
        total = len(found) if exhausted else self._count(org_no, qterms, filters, options)
        return self._page(org_no, best[offset:], total, offset)

    def _by_score_plain(self, org_no: int, term: _QueryTerm, by_df: list[tuple[tuple[int, float], int]], *,
                        limit: int, offset: int) -> Page:
        """:meth:`_by_score` without filters, from the postings alone: the less frequent fields' postings are
        read whole, the most frequent field's best first; a contract's score is the sum of its postings'."""
        k = offset + limit
        rank = {h: n for n, (h, _) in enumerate(term.hashes)}  # the order _matches sums the fields in
        (big, coef), big_df = by_df[0]
        others = {h: c for (h, c), _ in by_df[1:]}
        pending: dict[int, list[tuple[int, float]]] = {}  # contract -> (rank, score) of its other fields
        for r in self.store.query(
                f"SELECT doc, term, tf FROM search_postings WHERE org = ? AND term IN ({_marks(len(others))})",  # noqa: S608
                [org_no, *others]):
            h, tf = int(r["term"]), int(r["tf"])
            pending.setdefault(int(r["doc"]), []).append((rank[h], others[h] * tf * (K1 + 1) / (tf + K1)))
        partial = {doc: _total(parts) for doc, parts in pending.items()}  # their score without this field
        elsewhere = 0  # contracts holding the term in the other fields only (counted as they are found)
        found: dict[int, float] = {}
        for rows, _, exhausted in self._best_first(org_no, big, k):
            for r in rows:
                doc, tf = int(r["doc"]), int(r["tf"])
                if doc in found:  # looked up below in an earlier round: scored in full
                    continue
                if doc in pending:
                    del partial[doc]
                    found[doc] = _total([*pending.pop(doc), (rank[big], coef * tf * (K1 + 1) / (tf + K1))])
                else:
                    found[doc] = coef * tf * (K1 + 1) / (tf + K1)
            if exhausted:  # the contracts left hold the term in the other fields only
                found.update((doc, _total(parts)) for doc, parts in pending.items())
                best = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
                return self._page(org_no, best[offset:], len(found), offset)
            last = int(rows[-1]["tf"])
            # an unread contract holds the term in this field at most as often as the last one read: it scores at
            # most ``bound`` plus its other fields' score (a hair more for rounding)
            bound = coef * last * (K1 + 1) / (last + K1)
            best = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
            if len(best) == k:
                # the contracts of the other fields that could still reach the page: look their tf up in this one
                kth = best[-1][1]
                near = [doc for doc, part in partial.items() if part + bound >= kth * (1 - 1e-9)]
                tfs = self._tfs(org_no, big, near)
                for doc in near:
                    del partial[doc]
                    parts = pending.pop(doc)
                    if doc in tfs:
                        parts.append((rank[big], coef * tfs[doc] * (K1 + 1) / (tfs[doc] + K1)))
                    else:
                        elsewhere += 1
                    found[doc] = _total(parts)
                best = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
                rest = max(partial.values(), default=0.0)
                if best[-1][1] > (bound + rest) * (1 + 1e-9):
                    return self._page(org_no, best[offset:], big_df + elsewhere + self._absent(org_no, big, pending),
                                      offset)
        raise AssertionError("unreachable: the last chunk of postings is always exhausted")

    def _best_first(self, org_no: int, term: int, k: int) -> Iterator[tuple[list[Row], int, bool]]:
        """A term's postings best first (tf descending, then doc), in chunks that double from ``2k`` (at least
        64): (the chunk, postings read so far, whether the postings are exhausted); ends after the last."""
        read, chunk = 0, max(64, 2 * k)
        while True:
            rows = self.store.query(
                "SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? ORDER BY tf DESC, doc LIMIT ? OFFSET ?",
                (org_no, term, chunk, read))
            read += len(rows)
            exhausted = len(rows) < chunk
            yield rows, read, exhausted
            if exhausted:
                return
            chunk *= 2

    def _tfs(self, org_no: int, term: int, docs: list[int]) -> dict[int, int]:
        """The tf under ``term`` of those of ``docs`` that have a posting there."""
        out: dict[int, int] = {}
        for i in range(0, len(docs), _BATCH):
            chunk = docs[i:i + _BATCH]
            out.update((int(r["doc"]), int(r["tf"])) for r in self.store.query(
                f"SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? AND doc IN ({_marks(len(chunk))})",  # noqa: S608
                [org_no, term, *chunk]))
        return out

    def _absent(self, org_no: int, term: int, docs: Iterable[int]) -> int:
        """How many of ``docs`` have no posting under ``term``."""
        absent = 0
        docs = list(docs)
        for i in range(0, len(docs), _BATCH):
            chunk = docs[i:i + _BATCH]
            row = self.store.query_one(
                f"SELECT COUNT(*) AS n FROM search_postings WHERE org = ? AND term = ? AND doc IN ({_marks(len(chunk))})",  # noqa: S608, E501
                [org_no, term, *chunk])
            absent += len(chunk) - (int(row["n"]) if row else 0)
        return absent

    def _contract_ids(self, org_no: int, docs: list[int]) -> dict[int, str]:
        # by primary key only (with "org = ?" in the WHERE, SQLite walks the (org, contract_id) index instead);
        # the organisation is checked on every row all the same
        rows = self.store.query(
            f"SELECT doc, org, contract_id FROM search_docs WHERE doc IN ({_marks(len(docs))})", docs)  # noqa: S608
        return {int(r["doc"]): str(r["contract_id"]) for r in rows if int(r["org"]) == org_no}
