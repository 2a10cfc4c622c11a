"""Keyword search over archived contracts through a blind index: HMACs of terms at rest, never plaintext.

:mod:`.terms` turns text into terms (normalisation, words, CJK bigrams); :mod:`.index` stores their keyed
hashes per organisation and answers AND queries with filters, relevance or date order, and pagination.
"""

from __future__ import annotations

from .index import FIELD_WEIGHTS, BlindIndex, Page
from .terms import EmptyQuery, QueryTooLong, normalize, query_terms, term_frequencies

__all__ = ["FIELD_WEIGHTS", "BlindIndex", "EmptyQuery", "Page", "QueryTooLong", "normalize", "query_terms",
           "term_frequencies"]
