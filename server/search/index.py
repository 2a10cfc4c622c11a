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
frequency; per term hash its document frequency; per (party hash, contract) one row.  The field is part of the
hash rather than a column, so the same word in a title and in the text gives unrelated hashes.  What an
observer of the database still learns is the shape: how many terms a contract has, how often each (unknown)
hash occurs, which contracts share hashes.

**Score** (``order="relevance"``): a field-weighted BM25 without length normalisation::

    score(c) = Σ_terms Σ_fields  W[field] · ln(1 + N / df(hash)) · tf · (k1 + 1) / (tf + k1),   k1 = 1.2

with ``N`` the organisation's number of indexed contracts, ``df`` the number of its contracts whose ``field``
holds the term, ``tf`` the occurrences of the term in that field, and the weights of :data:`FIELD_WEIGHTS`
(applied at query time, so they can change without re-indexing).  Ties, and ``order="date"``, are broken by
the order contracts were indexed; ``order="date"`` gives the newest first.  Every query term must occur in at
least one field (AND).

**Queries** start from the smallest candidate set (the rarest query term by its document frequencies, or the
party filter's contracts) and look every term up per candidate in the covering index ``(org, term, doc, tf)``;
when no candidate set is small enough, the terms' postings are scanned and grouped by contract instead.  The
total is exact.  Every statement names the organisation's number (the contract-id lookup checks it on every
row), so one organisation's rows are out of reach of another's queries even if two hashes ever collided.
Measured with ``bench/search_index.py`` (100,000 contracts in one organisation, p95 on a loaded 2-core machine):
rare and medium terms, names and party filters answer in 1-14 ms, like FTS5 on plaintext or faster; a term in
most contracts, or an AND of several such terms, must score and count tens of thousands of contracts and takes
30-150 ms (FTS5: 25-150 ms; an AND of two or three very common terms is 2-3.5x FTS5, which merges its compressed
doclists in C where SQL groups rows).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..clock import to_text
from ..errors import InvalidArgument
from ..store import Store
from .terms import query_terms, term_frequencies

#: Searchable fields and their weight in the score.
FIELD_WEIGHTS: Mapping[str, float] = {"title": 4.0, "parties": 3.0, "tags": 2.0, "text": 1.0}
K1 = 1.2
MAX_LIMIT = 100
MIN_KEY_BYTES = 32
_CHUNK = 200  # rows per multi-row INSERT (4 parameters each: well under every driver's limit)
_SEEK_COST = 1  # how many scanned postings one index seek is worth, for choosing a query plan (measured)


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


MIGRATIONS = [_v1]

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


@dataclass(frozen=True)
class _QueryTerm:
    hashes: list[tuple[int, float]]  # (term hash, W[field] * idf) for each field holding the term
    df: int  # sum of the fields' document frequencies: an upper bound of the postings to read


def _part(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _h64(key: bytes, prefix: bytes, last: bytes) -> int:
    """The first 8 bytes of HMAC-SHA256(key, prefix || len(last) || last) as a signed integer."""
    digest = hmac.digest(key, prefix + len(last).to_bytes(4, "big") + last, "sha256")
    return int.from_bytes(digest[:8], "big", signed=True)


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
        return [_QueryTerm([(h, c) for h, c, _ in hs], sum(df for *_, df in hs))
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
        return self._run(org_no, qterms, filters, order, limit, offset)

    def _driver(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters) -> tuple[str, list[Any]] | None:
        """The candidate set to start from (SQL and parameters), or None to scan every term's postings."""
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
            span_params = [org_no, to_text(filters.date_from) if filters.date_from else "",
                           to_text(filters.date_to) if filters.date_to else "~"]  # "~" sorts after every date
            row = self.store.query_one("SELECT COUNT(*) AS n FROM search_docs WHERE org = ? AND date >= ? AND date < ?",
                                       span_params)
            options.append((int(row["n"]) if row else 0,
                            "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ?", span_params))
        if not options:
            return None
        size, sql, params = min(options, key=lambda o: o[0])
        seeks = size * sum(len(q.hashes) for q in qterms) * _SEEK_COST
        return (sql, params) if seeks < sum(q.df for q in qterms) else None

    def _run(self, org_no: int, qterms: list[_QueryTerm], filters: _Filters, order: Order, limit: int,
             offset: int) -> Page:
        party_hash, status, date_from, date_to = filters.party_hash, filters.status, filters.date_from, filters.date_to
        q_rows = [(h, i, coef) for i, q in enumerate(qterms) for h, coef in q.hashes]
        params: list[Any] = [v for row in q_rows for v in row]
        sql = [f"WITH q (term, qi, coef) AS (VALUES {', '.join(['(?, ?, ?)'] * len(q_rows))}), "  # noqa: S608
               "m AS (SELECT p.doc AS doc, SUM(q.coef * p.tf * ? / (p.tf + ?)) AS score, "
               "COUNT(DISTINCT q.qi) AS n FROM q JOIN search_postings p ON p.org = ? AND p.term = q.term"]
        params += [K1 + 1, K1, org_no]
        driver = self._driver(org_no, qterms, filters)
        if driver is not None:
            sql.append(f" WHERE p.doc IN ({driver[0]})")
            params += driver[1]
        sql.append(" GROUP BY p.doc) SELECT m.doc AS doc, m.score AS score, COUNT(*) OVER () AS total FROM m")
        filtered = status is not None or date_from is not None or date_to is not None
        if filtered or order == "date":
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
        sql.append(" ORDER BY m.score DESC, m.doc" if order == "relevance" else " ORDER BY d.date DESC, m.doc DESC")
        sql.append(" LIMIT ? OFFSET ?")
        params += [limit, offset]
        rows = self.store.query("".join(sql), params)
        if not rows:
            # past the end, no row carries the total: ask for the first page
            return Page([], self._run(org_no, qterms, filters, "relevance", 1, 0).total if offset else 0)
        ids = self._contract_ids(org_no, [int(r["doc"]) for r in rows])
        total = int(rows[0]["total"])
        nxt = offset + len(rows) if offset + len(rows) < total else None
        return Page([(ids[int(r["doc"])], float(r["score"])) for r in rows], total, nxt)

    def _contract_ids(self, org_no: int, docs: list[int]) -> dict[int, str]:
        # by primary key only (with "org = ?" in the WHERE, SQLite walks the (org, contract_id) index instead);
        # the organisation is checked on every row all the same
        rows = self.store.query(
            f"SELECT doc, org, contract_id FROM search_docs WHERE doc IN ({_marks(len(docs))})", docs)  # noqa: S608
        return {int(r["doc"]): str(r["contract_id"]) for r in rows if int(r["org"]) == org_no}
