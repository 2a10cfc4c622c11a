"""The query planner's cost constants (:mod:`.index` picks a plan by them; :mod:`.plan_sql` and :mod:`.plan_bits`
run the plans).  Read as ``tuning.NAME`` at call time, so tests can hold every plan to the full scan's pages by
setting them (``tests/unit/test_search_index.py``); measured with ``bench/search_index.py``.
"""

from __future__ import annotations

SEEK_COST = 1  # how many scanned postings one index seek is worth, for choosing a query plan (measured)
WALK_COST = 2  # how many scanned postings one contract walked in date order (per term probe) is worth
TOP_MIN = 2_000  # below this many postings to score, a query scans them all (no top-k pass is worth it)
TOP_DENSE = 20  # ... nor unless the term is in this many times the contracts of the pages asked for
TOP_BUDGET = 0.5  # the top-k pass gives up (and scans) after reading this share of the postings
BATCH = 2_000  # contracts per scoring statement of the top-k pass
BITS_MIN = 2_000  # from this many postings to read (estimated), a query takes the bitmap plan (plan 4)
SCORE_ALL = 1_000  # plan 4 scores every match up to this many
CLASS_ALL = 2_000  # ... and every contract of a class of matches up to this many
MAX_CLASS_HASHES = 10  # ... splits the matches into classes over at most this many hashes
BITS_BUDGET = 60_000  # ... and gives up (scans) after reading this many postings best first
HEAD = 128  # plan 4 splits its classes on a hash's contracts holding it more than once, when at most this many
