"""Keyword search over archived contracts through a blind index: HMACs of terms at rest, never plaintext.

:mod:`.terms` turns text into terms (normalisation, words, CJK bigrams); :mod:`.index` stores their keyed
hashes per organisation (tables in :mod:`.schema`, sets of contracts in :mod:`.bitmaps`) and answers AND queries
with filters, relevance or date order, and pagination, choosing a plan of :mod:`.plan_sql` or :mod:`.plan_bits`
by the costs in :mod:`.tuning`.
"""

from __future__ import annotations

from .index import FIELD_WEIGHTS, BlindIndex, Page
from .terms import EmptyQuery, QueryTooLong, normalize, query_terms, term_frequencies

__all__ = ["FIELD_WEIGHTS", "BlindIndex", "EmptyQuery", "Page", "QueryTooLong", "normalize", "query_terms",
           "term_frequencies"]
