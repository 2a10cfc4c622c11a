"""Text normalisation and tokenisation for the blind search index (documents and queries alike).

Normalisation, in this order:

1. Unicode NFKC (full-width Latin letters and digits → ASCII, ligatures such as U+FB01 → ``fi``, half-width
   katakana → full-width, ``²`` → ``2``);
2. ``str.casefold`` (``Straße`` → ``strasse``, ``ΣΊΣΥΦΟΣ`` → ``σίσυφοσ``);
3. accents stripped from Latin letters only: a combining mark (category ``Mn``) is dropped when the letter it
   sits on is Latin (``Müller`` → ``muller``, ``Ševčík`` → ``sevcik``); other scripts keep theirs (Cyrillic
   ``й`` stays ``й``, Hangul syllables are untouched); then NFC again.

Tokenisation of the normalised text (one regular expression, so it is deterministic and fast):

* a run of CJK characters (Han incl. extensions and compatibility ideographs, ``々〆〇``, Hiragana, Katakana,
  Hangul syllables and jamo) gives its overlapping bigrams (``张三签署合同`` → ``张三 三签 签署 署合 合同``); a
  run of one character gives that character (a unigram).  CJK text has no spaces, so bigrams let any
  two-character word inside a run be found without a dictionary;
* a run of other letters and digits (Latin, Cyrillic, Greek, digits, ...) is a word; underscore, punctuation,
  symbols and spaces separate words (``ACME-2024_v2`` → ``acme 2024 v2``, ``don't`` → ``don``);
* words of one character and the few stop words in :data:`STOP_WORDS` are dropped (CJK unigrams are kept).

A query is tokenised exactly like a document and every distinct query term must match (AND).  Known limits:
there are no phrases (a CJK bigram is the closest thing), no stemming or prefixes, a single CJK character as
a query finds that character only where it stands alone (documents index bigrams), and combining marks of
scripts such as Devanagari split words (the same way in documents and queries, so matching stays consistent).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

from ..errors import InvalidArgument

#: Most common function words of English and Russian; kept tiny on purpose (a stop list hides real queries).
STOP_WORDS = frozenset({
    "an", "and", "are", "as", "at", "be", "by", "for", "in", "is", "it", "of", "on", "or", "the", "to", "with",
    "на", "не", "по", "что",
})

#: At most this many distinct terms in one query (a long CJK sentence gives one bigram per character).
MAX_QUERY_TERMS = 32

_CJK = (
    "\u1100-\u11ff"  # Hangul jamo
    "\u3005-\u3007"  # iteration mark, closing mark, ideographic zero
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana (incl. ー)
    "\u3130-\u318f"  # Hangul compatibility jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul jamo extended A
    "\uac00-\ud7af"  # Hangul syllables
    "\ud7b0-\ud7ff"  # Hangul jamo extended B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G and the compatibility supplement
)
# [^\W_...] = word characters that are neither underscore nor CJK
_TOKENS = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")


class EmptyQuery(InvalidArgument):
    """The query has no searchable term (empty, punctuation, one-letter or stop words only)."""

    reason = "EMPTY_QUERY"


class QueryTooLong(InvalidArgument):
    """The query has more distinct terms than :data:`MAX_QUERY_TERMS`."""

    reason = "QUERY_TOO_LONG"


@functools.lru_cache(maxsize=4096)
def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN ")


def _strip_latin_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    base_latin = False
    for ch in decomposed:
        if unicodedata.category(ch) == "Mn":
            if base_latin:
                continue
        else:
            base_latin = ch.isascii() or _is_latin(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def normalize(text: str) -> str:
    """NFKC, case folding, accents stripped from Latin letters (see the module documentation)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    return _strip_latin_accents(folded)


def iter_terms(text: str) -> list[str]:
    """The terms of ``text`` in order, with repetitions (what a document contributes to the index)."""
    terms: list[str] = []
    for m in _TOKENS.finditer(normalize(text)):
        cjk, word = m.group(1), m.group(2)
        if cjk is not None:
            if len(cjk) == 1:
                terms.append(cjk)
            else:
                terms.extend(cjk[i:i + 2] for i in range(len(cjk) - 1))
        elif len(word) > 1 and word not in STOP_WORDS:
            terms.append(word)
    return terms


def term_frequencies(text: str) -> Counter[str]:
    """Each distinct term of ``text`` with the number of times it occurs."""
    return Counter(iter_terms(text))


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query, in first-seen order; all of them must match.

    Raises :class:`EmptyQuery` when nothing searchable is left and :class:`QueryTooLong` above
    :data:`MAX_QUERY_TERMS` terms.
    """
    terms = list(dict.fromkeys(iter_terms(query)))
    if not terms:
        raise EmptyQuery("the query has no searchable word (one-letter words, punctuation and stop words are "
                         "ignored)")
    if len(terms) > MAX_QUERY_TERMS:
        raise QueryTooLong(f"the query has {len(terms)} distinct terms; at most {MAX_QUERY_TERMS} are allowed")
    return terms
