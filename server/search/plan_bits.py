"""Query plan 4 of the blind index: the matches as bitmaps (every AND, every filter), then the page.

The matches are the intersection of each term's bitmap (the union of its fields'), the party's, the status's and
the date span's, so the exact total is a count of bits.  Newest first, the contracts are walked by date; best
first, the matches are split into classes by the query hashes they hold and scored best bound first (see
:meth:`BitmapPlans._bits_best`).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from ..clock import to_text
from . import bitmaps, tuning
from .plan_sql import SqlPlans
from .query import NO_FILTERS, Filters, Order, Page, QueryTerm, month_start, next_month, part_score, span_bounds
from .schema import marks


class _OverBudget(Exception):
    """The best-first pass of the bitmap plan read more postings than :data:`tuning.BITS_BUDGET`."""


class _Top:
    """The ``k`` best (score, contract) found so far, every contract scored, and the postings read."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heap: list[tuple[float, int]] = []  # min-heap of the k best as (score, -doc)
        self.found: dict[int, float] = {}
        self.budget = tuning.BITS_BUDGET

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



class BitmapPlans(SqlPlans):
    """The bitmap plan, mixed into :class:`.index.BlindIndex` (it scores through the SQL plans' statements)."""

    # -- plan 4: the matches as bitmaps (every AND, every filter), then the page

    def _read_bits(self, table: str, column: str, org_no: int, keys: Sequence[Any]) -> dict[Any, bitmaps.Bits]:
        out: dict[Any, bitmaps.Bits] = {key: {} for key in keys}
        for r in self.store.query(
                f"SELECT {column} AS k, block, bits FROM {table} WHERE org = ? AND {column} IN ({marks(len(keys))})",  # noqa: S608
                [org_no, *keys]):
            out[r["k"]][int(r["block"])] = bitmaps.decode(bytes(r["bits"]))
        return out

    def _between(self, org_no: int, lo: str | None, hi: str | None) -> bitmaps.Bits:
        """The contracts dated in [lo, hi), from the date index (a month's worth at most, see :meth:`_span_bits`)."""
        return bitmaps.from_docs(int(r["doc"]) for r in self.store.query(
            "SELECT doc FROM search_docs WHERE org = ? AND date >= ? AND date < ?", (org_no, lo or "", hi or "~")))

    def _span_bits(self, org_no: int, filters: Filters) -> bitmaps.Bits:
        """The contracts dated within the filter's span: the months wholly inside from their bitmaps, the partial
        months at either end from the date index."""
        lo = to_text(filters.date_from) if filters.date_from is not None else None
        hi = to_text(filters.date_to) if filters.date_to is not None else None
        first = None if lo is None else lo[:7] if lo == month_start(lo[:7]) else next_month(lo[:7])
        end = None if hi is None else hi[:7]
        if first is not None and end is not None and first >= end:
            return self._between(org_no, lo, hi)
        out: bitmaps.Bits = {}
        for r in self.store.query("SELECT block, bits FROM search_facets WHERE org = ? AND facet >= ? AND facet < ?",
                                  (org_no, "m" + (first or ""), "m" + (end or "~"))):
            block = int(r["block"])
            out[block] = out.get(block, 0) | bitmaps.decode(bytes(r["bits"]))
        if lo is not None and first is not None and lo < month_start(first):
            out = bitmaps.union(out, self._between(org_no, lo, month_start(first)))
        if hi is not None and end is not None and month_start(end) < hi:
            out = bitmaps.union(out, self._between(org_no, month_start(end), hi))
        return out

    def _by_bits(self, org_no: int, n_docs: int, qterms: list[QueryTerm], filters: Filters, order: Order, *,
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
        if total <= tuning.SCORE_ALL or total <= k:
            found = self._scores(org_no, qterms, NO_FILTERS, bitmaps.members(matches), summed=True)
        else:
            held = [(h, coef, bitmaps.intersect(matches, sets[h])) for q in qterms for h, coef in q.hashes]
            best = self._bits_best(org_no, qterms, [x for x in held if x[2]], matches, k)
            if best is None:
                return None
            found = dict(best)
        top = heapq.nsmallest(k, found.items(), key=lambda ds: (-ds[1], ds[0]))
        return self._page(org_no, top[offset:], total, offset)

    def _bits_newest(self, org_no: int, n_docs: int, qterms: list[QueryTerm], filters: Filters,
                     matches: bitmaps.Bits, total: int, *, limit: int, offset: int) -> Page:
        """The page newest first: the matches' dates read and sorted when they are few, else the contracts walked
        newest first (within the date span) and kept when they match, until the page is full."""
        k = offset + limit
        if total * total <= k * n_docs:  # fewer rows than the walk is expected to read
            docs = bitmaps.members(matches)
            dated: list[tuple[str, int]] = []
            for i in range(0, len(docs), tuning.BATCH):
                chunk = docs[i:i + tuning.BATCH]
                dated += [(str(r["date"]), int(r["doc"])) for r in self.store.query(
                    f"SELECT doc, org, date FROM search_docs WHERE doc IN ({marks(len(chunk))})", chunk)  # noqa: S608
                    if int(r["org"]) == org_no]
            page = [doc for _, doc in sorted(dated, reverse=True)[offset:k]]
        else:
            span = span_bounds(filters)
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
        scores = self._scores(org_no, qterms, NO_FILTERS, page)
        # (a contract removed meanwhile is left out)
        return self._page(org_no, [(doc, scores[doc]) for doc in page if doc in scores], total, offset)

    def _bits_best(self, org_no: int, qterms: list[QueryTerm], held: list[tuple[int, float, bitmaps.Bits]],
                   matches: bitmaps.Bits, k: int) -> list[tuple[int, float]] | None:
        """The ``k`` best matches (or more, ties included).  The matches are split into classes by the set of
        query hashes they hold (the bitmaps say which); a class's contracts score at most the sum of its hashes'
        best contributions (their largest tf, from the tf index).  Classes are taken best bound first and stop
        once the k-th score found beats the next bound; a class is scored whole when small, else its hashes'
        postings are read best first (Fagin's threshold algorithm within the class)."""
        if len(held) > tuning.MAX_CLASS_HASHES:
            return None
        bound: dict[int, float] = {}
        once: dict[int, bitmaps.Bits] = {}  # hash -> the few contracts holding it more than once (when few)
        for h, coef, _ in held:
            # the head of its tf order: its largest tf, and whether few contracts hold it more than once (a word
            # in titles): the others then add exactly its part at tf 1, and the classes split on that
            rows = self.store.query("SELECT doc, tf FROM search_postings WHERE org = ? AND term = ? AND tf > 1 "
                                    "ORDER BY tf DESC, doc LIMIT ?", (org_no, h, tuning.HEAD + 1))
            bound[h] = part_score(coef, int(rows[0]["tf"]) if rows else 1)
            if len(rows) <= tuning.HEAD:
                once[h] = bitmaps.from_docs(int(r["doc"]) for r in rows)
        classes = _classes(matches, held, once)

        def limit_of(hs: list[tuple[int, bool]]) -> float:
            return sum(bound[held[n][0]] if more else part_score(held[n][1], 1) for n, more in hs)

        top = _Top(k)
        try:
            for limit, hs, members in sorted(((limit_of(hs), hs, members) for hs, members in classes),
                                             key=lambda c: -c[0]):
                if top.beats(limit):
                    break
                lists = {held[n][0]: (held[n][1], bound[held[n][0]] if more else part_score(held[n][1], 1))
                         for n, more in hs}
                size, opened = bitmaps.count(members), [n for n, more in hs if more]
                # in one hash's tf order (see _class_by_tf) when that reads fewer rows than scoring the class whole
                by_tf = len(opened) == 1 or (not opened and len(lists) <= 2)
                if by_tf and opened and size <= tuning.CLASS_ALL:
                    by_tf = top.k * bitmaps.count(held[opened[0]][2]) < size * len(lists) * size
                if size <= tuning.CLASS_ALL and not by_tf:
                    top.take(self._scores(org_no, qterms, NO_FILTERS, bitmaps.members(members), summed=True))
                elif by_tf or len(lists) == 1:
                    self._class_by_tf(org_no, qterms, [(held[n][0], held[n][1], more) for n, more in hs], members,
                                      top)
                else:
                    self._class_threshold(org_no, qterms, lists, members, top)
        except _OverBudget:
            return None
        return list(top.found.items())

    def _class_by_tf(self, org_no: int, qterms: list[QueryTerm], hs: list[tuple[int, float, bool]],
                     members: bitmaps.Bits, top: _Top) -> None:
        """A class whose order is one hash's tf order: its hashes (hash, weight, whether a member may hold it more
        than once) are one hash, or hold tf 1 exactly but for at most one.  The others then add the same to every
        member, so the class's first ``k`` members in the open hash's postings best first are its best; when none
        is open, every member scores the same and the first ``k`` by number are its best (ties go by number)."""
        k = top.k
        opened = [(h, coef) for h, coef, more in hs if more]
        if not opened and len(hs) <= 2:  # (two equal parts: the sum is the same whichever is added first)
            top.take(self._scores(org_no, qterms, NO_FILTERS, bitmaps.first(members, k), summed=True))
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
            top.take({doc: part_score(coef, tf) for doc, tf in kept})
            return
        if len(kept) == k and kept[-1][1] > 1:
            # the sum grows with the open hash's tf; a rounding could only tie two tfs when their parts were
            # within a hair of each other (never for realistic tfs): then leave it to the scan
            rest = sum(part_score(c, 1) for _, c, more in hs if not more)
            hi, lo = rest + part_score(coef, kept[-1][1]), rest + part_score(coef, kept[-1][1] - 1)
            if hi - lo <= hi * 1e-9:
                raise _OverBudget
        top.take(self._scores(org_no, qterms, NO_FILTERS, [doc for doc, _ in kept], summed=True))

    def _class_threshold(self, org_no: int, qterms: list[QueryTerm], lists: dict[int, tuple[float, float]],
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
            cursors[h] = [0.0 if len(rows) < chunk else part_score(coef, last), read + len(rows), chunk * 2]
            rest = sum(c[0] for x, c in cursors.items() if x != h)
            # within reach: this hash's part plus at most the cursors of the others
            new = [doc for r in rows if (doc := int(r["doc"])) not in top.found and bitmaps.has(members, doc)
                   and not top.beats(part_score(coef, int(r["tf"])) + rest)]
            top.take(self._scores(org_no, qterms, NO_FILTERS, new, summed=True))

