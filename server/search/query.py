"""What a query is once parsed (its terms' hashes and weights, its filters), the page it answers, and the scoring
arithmetic every plan shares (the score is described in :mod:`.index`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..clock import to_text

K1 = 1.2

Order = Literal["relevance", "date"]


@dataclass(frozen=True)
class Page:
    """One page of results: ``(contract_id, score)`` best first, the exact number of matches, the next offset."""

    results: list[tuple[str, float]]
    total: int
    next: int | None = None


@dataclass(frozen=True)
class Filters:
    party_hash: int | None
    status: str | None
    date_from: datetime | None
    date_to: datetime | None


NO_FILTERS = Filters(None, None, None, None)


@dataclass(frozen=True)
class QueryTerm:
    hashes: list[tuple[int, float]]  # (term hash, W[field] * idf) for each field holding the term
    df: int  # sum of the fields' document frequencies: an upper bound of the postings to read
    dfs: list[int]  # each field's document frequency (as hashes)


def span_bounds(filters: Filters) -> list[str]:
    """The date span's bounds as stored text ("~" sorts after every date)."""
    return [to_text(filters.date_from) if filters.date_from else "",
            to_text(filters.date_to) if filters.date_to else "~"]


def holds(org_no: int, hashes: Sequence[tuple[tuple[int, float], int]], alias: str) -> tuple[str, list[Any]]:
    """SQL true when contract ``alias``.doc has a posting under one of ``hashes`` (tried in the order given: the
    most frequent first, so that the first probe usually decides)."""
    probes = [f"EXISTS (SELECT 1 FROM search_postings x WHERE x.org = ? AND x.term = ? AND x.doc = {alias}.doc)"  # noqa: S608
              for _ in hashes]
    return "(" + " OR ".join(probes) + ")", [v for (h, _), _ in hashes for v in (org_no, h)]


def sum_parts(parts: list[tuple[int, float]]) -> float:
    """The sum of a contract's per-field scores, added in query-field order (as the SQL of ``_matches`` adds
    them: ``test_fast_plans_match_the_full_scan`` holds the two to the same pages)."""
    score = 0.0
    for _, part in sorted(parts):
        score += part
    return score


def month_start(month: str) -> str:
    """The stored form of the first instant of a month (``YYYY-MM``)."""
    return f"{month}-01T00:00:00.000000Z"


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def part_score(coef: float, tf: int) -> float:
    """One hash's part of a score (as the SQL of ``_matches`` computes it)."""
    return coef * tf * (K1 + 1) / (tf + K1)

