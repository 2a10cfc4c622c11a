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

**What is stored** (:mod:`.schema`): per organisation a number and its document count; per contract a
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

**Queries** have four plans, chosen per query by estimated cost (in postings read, :mod:`.tuning`) here and run
by :mod:`.plan_sql` (the first three) and :mod:`.plan_bits` (the fourth).  *Scan*: start from the
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

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import to_text
from ..errors import InvalidArgument
from ..store import Store
from . import tuning
from .plan_bits import BitmapPlans
from .query import K1, NO_FILTERS, Filters, Order, Page, QueryTerm, span_bounds
from .schema import CHUNK, MIGRATIONS, facets_of, mark, marks
from .terms import query_terms, term_frequencies

__all__ = ["FIELD_WEIGHTS", "K1", "MAX_LIMIT", "MIN_KEY_BYTES", "BlindIndex", "Order", "Page"]

#: Searchable fields and their weight in the score.
FIELD_WEIGHTS: Mapping[str, float] = {"title": 4.0, "parties": 3.0, "tags": 2.0, "text": 1.0}
MAX_LIMIT = 100
MIN_KEY_BYTES = 32


def _part(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _h64(key: bytes, prefix: bytes, last: bytes) -> int:
    """The first 8 bytes of HMAC-SHA256(key, prefix || len(last) || last) as a signed integer."""
    digest = hmac.digest(key, prefix + len(last).to_bytes(4, "big") + last, "sha256")
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class BlindIndex(BitmapPlans):
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
            for i in range(0, len(rows), CHUNK):
                chunk = rows[i:i + CHUNK]
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
            mark(self.store, "search_bits", "term", org_no, [*postings, *party_hashes], doc, on=True)
            mark(self.store, "search_facets", "facet", org_no, facets_of(status, when), doc, on=True)
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
        for i in range(0, len(terms), CHUNK):
            chunk = terms[i:i + CHUNK]
            self.store.execute(f"UPDATE search_terms SET df = df - 1 WHERE org = ? AND term IN ({marks(len(chunk))})",  # noqa: S608
                               [org_no, *chunk])
            self.store.execute(f"DELETE FROM search_terms WHERE org = ? AND term IN ({marks(len(chunk))}) AND df <= 0",  # noqa: S608
                               [org_no, *chunk])
        parties = [int(r["party"]) for r in self.store.query(
            "SELECT party FROM search_parties WHERE doc = ? AND org = ?", (doc, org_no))]
        mark(self.store, "search_bits", "term", org_no, [*terms, *parties], doc, on=False)
        row = self.store.query_one("SELECT status, date FROM search_docs WHERE doc = ? AND org = ?", (doc, org_no))
        if row is not None:
            mark(self.store, "search_facets", "facet", org_no, facets_of(str(row["status"]), str(row["date"])), doc,
                  on=False)
        self.store.execute("DELETE FROM search_postings WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("DELETE FROM search_parties WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("DELETE FROM search_docs WHERE doc = ? AND org = ?", (doc, org_no))
        self.store.execute("UPDATE search_orgs SET docs = docs - 1 WHERE id = ?", (org_no,))

    # -- searching

    def _query_terms(self, org: str, org_no: int, n_docs: int, terms: Iterable[str]) -> list[QueryTerm] | None:
        """The stored hashes of each query term with their weights; None when some term occurs nowhere."""
        wanted = {self.term_hash(org, f, t): (i, f) for i, t in enumerate(terms) for f in FIELD_WEIGHTS}
        found = self.store.query(
            f"SELECT term, df FROM search_terms WHERE org = ? AND term IN ({marks(len(wanted))})",  # noqa: S608
            [org_no, *wanted])
        per_term: dict[int, list[tuple[int, float, int]]] = {}
        for r in found:
            h, df = int(r["term"]), int(r["df"])
            i, f = wanted[h]
            per_term.setdefault(i, []).append((h, FIELD_WEIGHTS[f] * math.log(1 + n_docs / df), df))
        n_terms = len({i for i, _ in wanted.values()})
        if len(per_term) < n_terms:
            return None
        return [QueryTerm([(h, c) for h, c, _ in hs], sum(df for *_, df in hs), [df for *_, df in hs])
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
        filters = Filters(None if party is None else self.party_hash(org, party), status, date_from, date_to)
        return self._run(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)

    def _candidates(self, org_no: int, qterms: list[QueryTerm], filters: Filters) -> list[tuple[int, str, list[Any]]]:
        """The candidate sets a query can start from: (size, SQL giving their contracts, parameters)."""
        party_hash = filters.party_hash
        rarest = min(qterms, key=lambda q: q.df)
        options: list[tuple[int, str, list[Any]]] = []
        if len(qterms) > 1:
            hs = [h for h, _ in rarest.hashes]
            sql = f"SELECT doc FROM search_postings WHERE org = ? AND term IN ({marks(len(hs))})"  # noqa: S608
            options.append((rarest.df, sql, [org_no, *hs]))
        if party_hash is not None:
            row = self.store.query_one("SELECT COUNT(*) AS n FROM search_parties WHERE org = ? AND party = ?",
                                       (org_no, party_hash))
            options.append((int(row["n"]) if row else 0, "SELECT doc FROM search_parties WHERE org = ? AND party = ?",
                            [org_no, party_hash]))
        if filters.date_from is not None or filters.date_to is not None:
            span_params = [org_no, *span_bounds(filters)]
            row = self.store.query_one("SELECT COUNT(*) AS n FROM search_docs WHERE org = ? AND date >= ? AND date < ?",
                                       span_params)
            options.append((int(row["n"]) if row else 0,
                            "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ?", span_params))
        return options

    @staticmethod
    def _pick(qterms: list[QueryTerm], options: list[tuple[int, str, list[Any]]]
              ) -> tuple[tuple[str, list[Any]] | None, int]:
        """The candidate set to start from (SQL and parameters), or None to scan every term's postings; and the
        estimated cost in scanned postings."""
        scan = sum(q.df for q in qterms)
        if not options:
            return None, scan
        size, sql, params = min(options, key=lambda o: o[0])
        seeks = size * sum(len(q.hashes) for q in qterms) * tuning.SEEK_COST
        return ((sql, params), seeks) if seeks < scan else (None, scan)

    def _run(self, org_no: int, n_docs: int, qterms: list[QueryTerm], filters: Filters, order: Order, *,
             limit: int, offset: int) -> Page:
        options = self._candidates(org_no, qterms, filters)
        driver, cost = self._pick(qterms, options)
        page: Page | None = None
        if cost >= tuning.BITS_MIN and (len(qterms) > 1 or filters != NO_FILTERS):
            page = self._by_bits(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)
            if page is not None:
                return page
        if order == "date":
            page = self._by_date(org_no, n_docs, qterms, filters, options, cost=cost, limit=limit, offset=offset)
        elif len(qterms) == 1 and driver is None and cost >= tuning.TOP_MIN \
                and qterms[0].df >= tuning.TOP_DENSE * (offset + limit):
            # one term in many contracts: the best are found early, and the total is cheap (no AND to count);
            # under several fields without filters, by the bitmaps' classes (the total a count of bits)
            if len(qterms[0].hashes) > 1 and filters == NO_FILTERS and cost >= tuning.BITS_MIN:
                page = self._by_bits(org_no, n_docs, qterms, filters, order, limit=limit, offset=offset)
            if page is None:
                page = self._by_score(org_no, qterms, filters, options, limit=limit, offset=offset)
        return page if page is not None else self._scan(org_no, qterms, filters, driver, order, limit=limit,
                                                        offset=offset)

