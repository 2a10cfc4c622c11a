"""Query plans 1-3 of the blind index, in SQL over the postings (see :mod:`.index` for when each is taken).

*Scan* (plan 1) scores every match in one statement; *newest first* (plan 2) walks the contracts by date and stops
after the page; *best first* (plan 3) reads one term's postings in tf order and stops once no unread contract can
reach the page.  Counts by index probes serve plans 2 and 3.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from typing import Any

from ..clock import to_text
from ..store import Row, Store
from . import tuning
from .query import K1, NO_FILTERS, Filters, Order, Page, QueryTerm, holds, sum_parts
from .schema import marks


class SqlPlans:
    """The SQL plans, mixed into :class:`.index.BlindIndex` (which owns ``store``)."""

    store: Store

    # -- plan 1: score every match in one statement

    def _matches(self, org_no: int, qterms: list[QueryTerm], filters: Filters,
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

    def _scan(self, org_no: int, qterms: list[QueryTerm], filters: Filters, driver: tuple[str, list[Any]] | None,
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

    def _scores(self, org_no: int, qterms: list[QueryTerm], filters: Filters, docs: list[int], *,
                summed: bool = False) -> dict[int, float]:
        """The scores of those of ``docs`` that match (every term, the filters), computed as by :meth:`_scan`
        (``summed``: always by its SQL, one row per contract, rather than from the postings)."""
        out: dict[int, float] = {}
        if filters == NO_FILTERS and not summed:  # from the postings alone, summed in _matches's SQL order
            q_rows = [(h, i, coef) for i, q in enumerate(qterms) for h, coef in q.hashes]
            rank = {h: (n, i, coef) for n, (h, i, coef) in enumerate(q_rows)}
            for i in range(0, len(docs), tuning.BATCH):
                chunk = docs[i:i + tuning.BATCH]
                per_doc: dict[int, list[tuple[int, int, float, int]]] = {}
                for r in self.store.query(
                        f"SELECT doc, term, tf FROM search_postings WHERE org = ? AND term IN ({marks(len(rank))}) "  # noqa: S608
                        f"AND doc IN ({marks(len(chunk))})", [org_no, *rank, *chunk]):
                    per_doc.setdefault(int(r["doc"]), []).append((*rank[int(r["term"])], int(r["tf"])))
                for doc, hits in per_doc.items():
                    if len({qi for _, qi, _, _ in hits}) == len(qterms):
                        out[doc] = sum_parts([(n, coef * tf * (K1 + 1) / (tf + K1)) for n, _, coef, tf in hits])
            return out
        for i in range(0, len(docs), tuning.BATCH):
            chunk = docs[i:i + tuning.BATCH]
            sql, params = self._matches(org_no, qterms, filters, (marks(len(chunk)), chunk), window=False,
                                        dated=False)
            out.update((int(r["doc"]), float(r["score"])) for r in self.store.query("".join(sql), params))
        return out

    # -- plan 2: walk the contracts newest first, stop after the page

    def _by_date(self, org_no: int, n_docs: int, qterms: list[QueryTerm], filters: Filters,
                 options: list[tuple[int, str, list[Any]]], *, cost: int, limit: int, offset: int) -> Page | None:
        """Contracts newest first, each checked in the posting index, until ``offset + limit`` match; None when
        matches are too sparse for that to beat scoring them all."""
        share = math.prod(min(1.0, q.df / max(n_docs, 1)) for q in qterms)
        for size, sql, _ in options:
            if "search_postings" not in sql:  # the party's contracts, the date span's (the terms are counted above)
                share *= size / max(n_docs, 1)
        k = offset + limit
        if share <= 0 or k / share * (len(qterms) + 1) * tuning.WALK_COST >= cost:
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

    def _conditions(self, org_no: int, qterms: list[QueryTerm], filters: Filters, alias: str, *,
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
            sql, more = holds(org_no, sorted(zip(q.hashes, q.dfs, strict=True), key=lambda hd: -hd[1]), alias)
            where.append(sql)
            params += more
        if filters.party_hash is not None and not skip_party:
            where.append("EXISTS (SELECT 1 FROM search_parties y WHERE y.org = ? AND y.party = ? "  # noqa: S608
                         f"AND y.doc = {alias}.doc)")
            params += [org_no, filters.party_hash]
        return where, params

    def _count(self, org_no: int, qterms: list[QueryTerm], filters: Filters,
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
                sql, more = holds(org_no, hashes[:j], "c")
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

    def _by_score(self, org_no: int, qterms: list[QueryTerm], filters: Filters,
                  options: list[tuple[int, str, list[Any]]], *, limit: int, offset: int) -> Page | None:
        """One term in many contracts, best first.  The contracts holding it in its less frequent fields are
        scored in full up front; its postings in the most frequent field are read best first (one field's score
        grows with tf) and reading stops once no unread contract can reach the page (Fagin's threshold
        algorithm); None when that would read too much."""
        k = offset + limit
        (term,) = qterms
        by_df = sorted(zip(term.hashes, term.dfs, strict=True), key=lambda hd: -hd[1])
        (big, coef), big_df = by_df[0]
        plain = filters == NO_FILTERS
        if len(by_df) == 1 and plain:  # the score is the tf's alone: the index order is the result order
            rows = self.store.query(
                "SELECT doc, ? * tf * ? / (tf + ?) AS score FROM search_postings WHERE org = ? AND term = ? "
                "ORDER BY tf DESC, doc LIMIT ? OFFSET ?", (coef, K1 + 1, K1, org_no, big, limit, offset))
            return self._page(org_no, [(int(r["doc"]), float(r["score"])) for r in rows], big_df, offset)
        budget = big_df * tuning.TOP_BUDGET
        if sum(df for _, df in by_df[1:]) > budget:
            return None
        if plain:
            return self._by_score_plain(org_no, term, by_df, limit=limit, offset=offset)
        found: dict[int, float] = {}
        seen: set[int] = set()
        if len(by_df) > 1:
            others = [h for (h, _), _ in by_df[1:]]
            seen = {int(r["doc"]) for r in self.store.query(
                f"SELECT doc FROM search_postings WHERE org = ? AND term IN ({marks(len(others))})",  # noqa: S608
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

    def _by_score_plain(self, org_no: int, term: QueryTerm, by_df: list[tuple[tuple[int, float], int]], *,
                        limit: int, offset: int) -> Page:
        """:meth:`_by_score` without filters, from the postings alone: the less frequent fields' postings are
        read whole, the most frequent field's best first; a contract's score is the sum of its postings'."""
        k = offset + limit
        rank = {h: n for n, (h, _) in enumerate(term.hashes)}  # the order _matches sums the fields in
        (big, coef), big_df = by_df[0]
        others = {h: c for (h, c), _ in by_df[1:]}
        pending: dict[int, list[tuple[int, float]]] = {}  # contract -> (rank, score) of its other fields
        for r in self.store.query(
                f"SELECT doc, term, tf FROM search_postings WHERE org = ? AND term IN ({marks(len(others))})",  # noqa: S608
                [org_no, *others]):
            h, tf = int(r["term"]), int(r["tf"])
            pending.setdefault(int(r["doc"]), []).append((rank[h], others[h] * tf * (K1 + 1) / (tf + K1)))
        partial = {doc: sum_parts(parts) for doc, parts in pending.items()}  # their score without this field
        elsewhere = 0  # contracts holding the term in the other fields only (counted as they are found)
        found: dict[int, float] = {}
        for rows, _, exhausted in self._best_first(org_no, big, k):
            for r in rows:
                doc, tf = int(r["doc"]), int(r["tf"])
                if doc in found:  # looked up below in an earlier round: scored in full
                    continue
                if doc in pending:
                    del partial[doc]
                    found[doc] = sum_parts([*pending.pop(doc), (rank[big], coef * tf * (K1 + 1) / (tf + K1))])
                else:
                    found[doc] = coef * tf * (K1 + 1) / (tf + K1)
            if exhausted:  # the contracts left hold the term in the other fields only
                found.update((doc, sum_parts(parts)) for doc, parts in pending.items())
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
                    found[doc] = sum_parts(parts)
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
        for i in range(0, len(docs), tuning.BATCH):
            chunk = docs[i:i + tuning.BATCH]
            out.update((int(r["doc"]), int(r["tf"])) for r in self.store.query(
                f"SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? AND doc IN ({marks(len(chunk))})",  # noqa: S608
                [org_no, term, *chunk]))
        return out

    def _absent(self, org_no: int, term: int, docs: Iterable[int]) -> int:
        """How many of ``docs`` have no posting under ``term``."""
        absent = 0
        docs = list(docs)
        for i in range(0, len(docs), tuning.BATCH):
            chunk = docs[i:i + tuning.BATCH]
            row = self.store.query_one(
                f"SELECT COUNT(*) AS n FROM search_postings WHERE org = ? AND term = ? AND doc IN ({marks(len(chunk))})",  # noqa: S608, E501
                [org_no, term, *chunk])
            absent += len(chunk) - (int(row["n"]) if row else 0)
        return absent

    def _contract_ids(self, org_no: int, docs: list[int]) -> dict[int, str]:
        # by primary key only (with "org = ?" in the WHERE, SQLite walks the (org, contract_id) index instead);
        # the organisation is checked on every row all the same
        rows = self.store.query(
            f"SELECT doc, org, contract_id FROM search_docs WHERE doc IN ({marks(len(docs))})", docs)  # noqa: S608
        return {int(r["doc"]): str(r["contract_id"]) for r in rows if int(r["org"]) == org_no}
